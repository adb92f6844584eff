package sockets

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
)

// ErrProcNetSyntax means a line of /proc/net/tcp{,6} could not be parsed.
var ErrProcNetSyntax = errors.New("sockets: malformed /proc/net/tcp line")

// parseProcNet reads /proc/net/tcp (proto "tcp") or /proc/net/tcp6 (proto
// "tcp6") and calls fn for each socket, stopping at the first error.
func parseProcNet(r io.Reader, proto string, fn func(Socket) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	first := true
	for sc.Scan() {
		line := sc.Bytes()
		if first { // column headings
			first = false
			continue
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		s, err := parseProcNetLine(string(line), proto)
		if err != nil {
			return err
		}
		if err := fn(s); err != nil {
			return err
		}
	}
	return sc.Err()
}

// parseProcNetLine parses one socket line, for example
//
//	0: 0100007F:1F90 00000000:0000 0A 00000000:00000003 00:00000000 00000000  1000  0 31337 1 ...
func parseProcNetLine(line, proto string) (Socket, error) {
	f := strings.Fields(line)
	if len(f) < 10 {
		return Socket{}, fmt.Errorf("%w: %d fields in %q", ErrProcNetSyntax, len(f), line)
	}
	var s Socket
	var err error
	s.Proto = proto
	if s.Local, err = parseHexAddrPort(f[1], proto); err != nil {
		return Socket{}, err
	}
	if s.Remote, err = parseHexAddrPort(f[2], proto); err != nil {
		return Socket{}, err
	}
	st, err := strconv.ParseUint(f[3], 16, 8)
	if err != nil {
		return Socket{}, fmt.Errorf("%w: state %q", ErrProcNetSyntax, f[3])
	}
	s.State = stateFromKernel(uint8(st))
	tx, rx, ok := strings.Cut(f[4], ":")
	if !ok {
		return Socket{}, fmt.Errorf("%w: queues %q", ErrProcNetSyntax, f[4])
	}
	// For LISTEN sockets the kernel prints the accept queue as rx_queue and
	// 0 as tx_queue: the backlog is not shown here.
	sendQ, err1 := strconv.ParseUint(tx, 16, 32)
	recvQ, err2 := strconv.ParseUint(rx, 16, 32)
	if err := errors.Join(err1, err2); err != nil {
		return Socket{}, fmt.Errorf("%w: queues %q", ErrProcNetSyntax, f[4])
	}
	s.SendQ, s.RecvQ = uint32(sendQ), uint32(recvQ)
	uid, err := strconv.ParseUint(f[7], 10, 32)
	if err != nil {
		return Socket{}, fmt.Errorf("%w: uid %q", ErrProcNetSyntax, f[7])
	}
	s.UID = int(uid)
	if s.Inode, err = strconv.ParseUint(f[9], 10, 64); err != nil {
		return Socket{}, fmt.Errorf("%w: inode %q", ErrProcNetSyntax, f[9])
	}
	return s, nil
}

// parseHexAddrPort parses "0100007F:1F90": the address as 32-bit words
// printed in host byte order, then the port in hex.
func parseHexAddrPort(s, proto string) (netip.AddrPort, error) {
	a, p, ok := strings.Cut(s, ":")
	want := 8
	if proto == "tcp6" {
		want = 32
	}
	if !ok || len(a) != want || len(p) != 4 {
		return netip.AddrPort{}, fmt.Errorf("%w: address %q", ErrProcNetSyntax, s)
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: port in %q", ErrProcNetSyntax, s)
	}
	var raw [16]byte
	for i := 0; i < len(a); i += 8 {
		w, err := strconv.ParseUint(a[i:i+8], 16, 32)
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("%w: address %q", ErrProcNetSyntax, s)
		}
		binary.NativeEndian.PutUint32(raw[i/2:], uint32(w))
	}
	addr := netip.AddrFrom16(raw)
	if proto != "tcp6" {
		addr = netip.AddrFrom4([4]byte(raw[:4]))
	}
	return netip.AddrPortFrom(addr, uint16(port)), nil
}
