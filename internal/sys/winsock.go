package sys

import "syscall"

// winsock maps the Windows Sockets error numbers a dial, bind or read
// reports on Windows (WSAECONNREFUSED, ...) to the errno constants the rest
// of reach switches on: Go's syscall package on Windows defines
// ECONNREFUSED and its kin as numbers of its own that no socket call
// returns, so without this a refused connect there is a "local-error".
// The numbers are Winsock's (winerror.h) and the same on every build, so
// the map is tested on Linux; no errno of Linux or macOS reaches 10000.
var winsock = map[syscall.Errno]syscall.Errno{
	10004: syscall.EINTR,         // WSAEINTR
	10013: syscall.EACCES,        // WSAEACCES: a port reserved or excluded, or a firewall
	10024: syscall.EMFILE,        // WSAEMFILE
	10035: syscall.EAGAIN,        // WSAEWOULDBLOCK
	10036: syscall.EINPROGRESS,   // WSAEINPROGRESS
	10037: syscall.EALREADY,      // WSAEALREADY
	10048: syscall.EADDRINUSE,    // WSAEADDRINUSE
	10049: syscall.EADDRNOTAVAIL, // WSAEADDRNOTAVAIL
	10050: syscall.ENETDOWN,      // WSAENETDOWN
	10051: syscall.ENETUNREACH,   // WSAENETUNREACH
	10053: syscall.ECONNABORTED,  // WSAECONNABORTED
	10054: syscall.ECONNRESET,    // WSAECONNRESET
	10055: syscall.ENOBUFS,       // WSAENOBUFS
	10056: syscall.EISCONN,       // WSAEISCONN
	10060: syscall.ETIMEDOUT,     // WSAETIMEDOUT
	10061: syscall.ECONNREFUSED,  // WSAECONNREFUSED
	10064: syscall.EHOSTDOWN,     // WSAEHOSTDOWN
	10065: syscall.EHOSTUNREACH,  // WSAEHOSTUNREACH
}

// Errno returns the errno constant that e, an error number a socket call
// returned, stands for: a Winsock number becomes its syscall.E* name, and
// anything else is e itself.
func Errno(e syscall.Errno) syscall.Errno {
	if n, ok := winsock[e]; ok {
		return n
	}
	return e
}
