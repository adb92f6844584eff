package sockets

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
)

// This file turns what macOS's lsof and Windows' TCP table report into a
// Table, the same as Linux's: filtered by Options, each socket once with
// every process that holds it, sorted. Untagged, so it is tested on Linux.

// tableOf builds a Table from sockets each listed with one process (or
// none), merging the copies of a socket several processes hold.
func tableOf(socks []Socket, opt Options, source string, warnings []string) Table {
	t := Table{Source: source, Warnings: warnings}
	type key struct {
		proto         string
		local, remote string
		state         State
	}
	at := map[key]int{}
	for _, s := range socks {
		if !opt.keep(&s) {
			continue
		}
		k := key{s.Proto, s.Local.String(), s.Remote.String(), s.State}
		if i, ok := at[k]; ok {
			t.Sockets[i].Processes = append(t.Sockets[i].Processes, s.Processes...)
			continue
		}
		at[k] = len(t.Sockets)
		t.Sockets = append(t.Sockets, s)
	}
	for i := range t.Sockets {
		s := &t.Sockets[i]
		slices.SortFunc(s.Processes, func(a, b Process) int { return a.PID - b.PID })
		s.Processes = slices.CompactFunc(s.Processes, func(a, b Process) bool { return a.PID == b.PID })
		if len(s.Processes) > 0 {
			s.ProcessState = s.Processes[0].State
		}
	}
	t.Sockets = slices.DeleteFunc(t.Sockets, func(s Socket) bool { return !opt.keepOwner(&s) })
	sortSockets(t.Sockets)
	if t.Sockets == nil {
		t.Sockets = []Socket{}
	}
	return t
}

// winSockets gives Windows TCP table rows their processes: name returns the
// executable's path for a pid, or an error (access denied for elevated
// processes). Pid 0 (the System Idle Process, which Windows names as the
// owner of TIME_WAIT entries) is no owner; pid 4 is the kernel, "System",
// which holds SMB's and http.sys's ports (IIS, WinRM, anything behind
// HTTP.SYS); it cannot be opened. It returns what it could not name.
func winSockets(rows []winRow, name func(pid int) (string, error)) ([]Socket, []string) {
	names := map[int]string{0: "", 4: "System"}
	var denied []int
	out := make([]Socket, 0, len(rows))
	for _, r := range rows {
		s := r.Socket
		s.UID = -1 // Windows owners are SIDs, not uids
		if r.PID != 0 {
			n, ok := names[r.PID]
			if !ok {
				exe, err := name(r.PID)
				if err != nil {
					denied = append(denied, r.PID)
				}
				n = exeName(exe)
				names[r.PID] = n
			}
			s.Processes = []Process{{PID: r.PID, Command: n, UID: -1}}
		}
		out = append(out, s)
	}
	var warnings []string
	if len(denied) > 0 {
		slices.Sort(denied)
		pids := make([]string, len(denied))
		for i, p := range denied {
			pids[i] = strconv.Itoa(p)
		}
		warnings = append(warnings, fmt.Sprintf("the program of %s could not be named (%s): "+
			"run reach from an elevated prompt (Run as administrator) to name them",
			plural(len(denied), "process"), "pid "+strings.Join(pids, ", ")))
	}
	return out, warnings
}

// exeName is a program's name as Task Manager lists it: the path's last
// element ("C:\Python312\python.exe" is python.exe).
func exeName(exe string) string {
	if exe == "" {
		return ""
	}
	return path.Base(strings.ReplaceAll(exe, `\`, "/"))
}
