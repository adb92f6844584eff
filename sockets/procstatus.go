package sockets

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ErrProcStatusSyntax means /proc/PID/status lacks a field we need.
var ErrProcStatusSyntax = errors.New("sockets: malformed /proc/PID/status")

// procStatus is what we read from /proc/PID/status.
type procStatus struct {
	Name  string
	State string // "running", "sleeping", "stopped", ...
	UID   int    // real uid
}

// processStates names the state letters of fs/proc/array.c.
var processStates = map[byte]string{
	'R': "running", 'S': "sleeping", 'D': "disk-sleep", 'T': "stopped",
	't': "tracing-stop", 'X': "dead", 'Z': "zombie", 'P': "parked", 'I': "idle",
}

// parseProcStatus extracts the name, state and real uid from the text of
// /proc/PID/status, for example "Name:\tsshd\nState:\tS (sleeping)\n...Uid:\t0\t0\t0\t0\n".
func parseProcStatus(text string) (procStatus, error) {
	var st procStatus
	var haveName, haveState, haveUID bool
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() && !(haveName && haveState && haveUID) {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		val = strings.TrimLeft(val, " \t")
		switch key {
		case "Name":
			st.Name, haveName = unescapeComm(val), true
		case "State":
			if val == "" {
				return st, fmt.Errorf("%w: empty State", ErrProcStatusSyntax)
			}
			st.State, haveState = processStates[val[0]], true
			if st.State == "" {
				st.State = "unknown (" + val[:1] + ")"
			}
		case "Uid":
			f := strings.Fields(val)
			if len(f) == 0 {
				return st, fmt.Errorf("%w: empty Uid", ErrProcStatusSyntax)
			}
			uid, err := strconv.ParseUint(f[0], 10, 32)
			if err != nil {
				return st, fmt.Errorf("%w: Uid %q", ErrProcStatusSyntax, f[0])
			}
			st.UID, haveUID = int(uid), true
		}
	}
	if !haveName || !haveState || !haveUID {
		return st, fmt.Errorf("%w: missing Name, State or Uid", ErrProcStatusSyntax)
	}
	return st, nil
}

// unescapeComm undoes the kernel's escaping of the Name field, where a
// newline is printed as "\n" and a backslash as "\\".
func unescapeComm(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	return strings.NewReplacer(`\n`, "\n", `\\`, `\`).Replace(s)
}

// parseSocketLink returns the inode of a /proc/PID/fd link target
// "socket:[12345]", and false for any other file. It takes bytes and does
// not allocate: it runs once per open file of every process.
func parseSocketLink(target []byte) (uint64, bool) {
	const prefix = "socket:["
	if len(target) < len(prefix)+2 || string(target[:len(prefix)]) != prefix || target[len(target)-1] != ']' {
		return 0, false
	}
	var ino uint64
	for _, c := range target[len(prefix) : len(target)-1] {
		d := uint64(c - '0')
		if c < '0' || c > '9' || ino > (math.MaxUint64-d)/10 {
			return 0, false
		}
		ino = ino*10 + d
	}
	return ino, true
}
