package sockets

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// ErrTCPTableSyntax means a table GetExtendedTcpTable returned could not be
// parsed: shorter than its entry count says.
var ErrTCPTableSyntax = errors.New("sockets: malformed Windows TCP table")

// The layouts of MIB_TCPTABLE_OWNER_PID and MIB_TCP6TABLE_OWNER_PID, which
// GetExtendedTcpTable fills for TCP_TABLE_OWNER_PID_ALL: a DWORD entry
// count, then the rows. Windows runs little-endian (x86, arm64); addresses
// and ports are in network order, a port in the low two bytes of a DWORD.
const (
	winRow4Size = 24 // dwState, dwLocalAddr, dwLocalPort, dwRemoteAddr, dwRemotePort, dwOwningPid
	winRow6Size = 56 // ucLocalAddr[16], dwLocalScopeId, dwLocalPort, ucRemoteAddr[16], dwRemoteScopeId, dwRemotePort, dwState, dwOwningPid
)

// winStates names MIB_TCP_STATE values as the kernel names Linux's states,
// so callers compare with one set of constants.
var winStates = [...]State{
	1: StateClose, 2: StateListen, 3: StateSynSent, 4: StateSynRecv, 5: StateEstablished,
	6: StateFinWait1, 7: StateFinWait2, 8: StateCloseWait, 9: StateClosing, 10: StateLastAck,
	11: StateTimeWait, 12: "DELETE_TCB",
}

func winState(n uint32) State {
	if n < uint32(len(winStates)) && winStates[n] != "" {
		return winStates[n]
	}
	return State(fmt.Sprintf("STATE_%d", n))
}

// winRow is one row of a Windows TCP table: the socket and the pid that
// owns it (0 for the System Idle Process, which holds TIME_WAIT entries).
type winRow struct {
	Socket
	PID int
}

// parseTCPTable parses the bytes GetExtendedTcpTable wrote, IPv6 rows when
// v6 is set. It fails on a table shorter than its count says; bytes past
// the last row (the buffer is often larger than the table) are ignored.
func parseTCPTable(b []byte, v6 bool) ([]winRow, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("%w: %d bytes, no entry count", ErrTCPTableSyntax, len(b))
	}
	n := binary.LittleEndian.Uint32(b)
	size := winRow4Size
	if v6 {
		size = winRow6Size
	}
	body := b[4:]
	if uint64(n)*uint64(size) > uint64(len(body)) {
		return nil, fmt.Errorf("%w: %d entries of %d bytes need %d bytes, have %d",
			ErrTCPTableSyntax, n, size, uint64(n)*uint64(size), len(body))
	}
	rows := make([]winRow, 0, n)
	for i := range int(n) {
		r := body[i*size : (i+1)*size]
		if v6 {
			rows = append(rows, parseRow6(r))
		} else {
			rows = append(rows, parseRow4(r))
		}
	}
	return rows, nil
}

func dword(b []byte, off int) uint32 { return binary.LittleEndian.Uint32(b[off:]) }

// port reads a port kept in network order in a DWORD's first two bytes.
func port(b []byte, off int) uint16 { return binary.BigEndian.Uint16(b[off:]) }

func parseRow4(r []byte) winRow {
	local := netip.AddrFrom4([4]byte(r[4:8]))
	remote := netip.AddrFrom4([4]byte(r[12:16]))
	return winRow{PID: int(dword(r, 20)), Socket: Socket{
		Proto:  "tcp",
		State:  winState(dword(r, 0)),
		Local:  netip.AddrPortFrom(local, port(r, 8)),
		Remote: netip.AddrPortFrom(remote, port(r, 16)),
	}}
}

func parseRow6(r []byte) winRow {
	local := netip.AddrFrom16([16]byte(r[0:16]))
	remote := netip.AddrFrom16([16]byte(r[24:40]))
	if id := dword(r, 16); id != 0 && local.IsLinkLocalUnicast() {
		local = local.WithZone(fmt.Sprint(id))
	}
	if id := dword(r, 40); id != 0 && remote.IsLinkLocalUnicast() {
		remote = remote.WithZone(fmt.Sprint(id))
	}
	return winRow{PID: int(dword(r, 52)), Socket: Socket{
		Proto:  "tcp6",
		State:  winState(dword(r, 48)),
		Local:  netip.AddrPortFrom(local, port(r, 20)),
		Remote: netip.AddrPortFrom(remote, port(r, 44)),
	}}
}
