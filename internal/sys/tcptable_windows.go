package sys

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/windows"
)

// iphlpapi's GetExtendedTcpTable, called through a lazy DLL (no cgo).
var (
	modIphlpapi             = windows.NewLazySystemDLL("iphlpapi.dll")
	procGetExtendedTcpTable = modIphlpapi.NewProc("GetExtendedTcpTable")
)

const tcpTableOwnerPIDAll = 5 // TCP_TABLE_OWNER_PID_ALL

// TCPTable returns the bytes GetExtendedTcpTable writes for
// TCP_TABLE_OWNER_PID_ALL: every TCP socket of the family (IPv6 when v6 is
// set) with its owning pid, as MIB_TCPTABLE_OWNER_PID or
// MIB_TCP6TABLE_OWNER_PID. The sockets package parses them.
func TCPTable(v6 bool) ([]byte, error) {
	family := uintptr(windows.AF_INET)
	if v6 {
		family = windows.AF_INET6
	}
	size := uint32(16 << 10)
	// The table can grow between the call that sizes it and the one that
	// fills it; each ERROR_INSUFFICIENT_BUFFER says the size it needs now.
	for range 8 {
		buf := make([]byte, size)
		r, _, _ := procGetExtendedTcpTable.Call(uintptr(unsafe.Pointer(&buf[0])),
			uintptr(unsafe.Pointer(&size)), 0, family, tcpTableOwnerPIDAll, 0)
		switch err := windows.Errno(r); {
		case r == 0:
			return buf[:size], nil
		case errors.Is(err, windows.ERROR_INSUFFICIENT_BUFFER):
			size += size / 4 // room for sockets opened meanwhile
		default:
			return nil, fmt.Errorf("sys: GetExtendedTcpTable: %w", err)
		}
	}
	return nil, fmt.Errorf("sys: GetExtendedTcpTable: the table kept growing past %d bytes", size)
}

// ProcessImage returns the full path of the executable of process pid
// (QueryFullProcessImageName). It fails for processes this user may not
// query, such as other users' services without elevation.
func ProcessImage(pid int) (string, error) {
	h, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, false, uint32(pid))
	if err != nil {
		return "", fmt.Errorf("sys: open process %d: %w", pid, err)
	}
	defer windows.CloseHandle(h)
	buf := make([]uint16, windows.MAX_LONG_PATH)
	n := uint32(len(buf))
	if err := windows.QueryFullProcessImageName(h, 0, &buf[0], &n); err != nil {
		return "", fmt.Errorf("sys: image name of process %d: %w", pid, err)
	}
	return windows.UTF16ToString(buf[:n]), nil
}
