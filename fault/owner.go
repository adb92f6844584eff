package fault

import (
	"bytes"
	"errors"
	"os"
	"strconv"
)

// self is this process as an owner.
func self() Owner {
	pid := os.Getpid()
	o := Owner{PID: pid}
	if b, err := os.ReadFile("/proc/self/stat"); err == nil {
		o.Start, _ = parseStatStart(b)
	}
	return o
}

// alive reports whether o still runs: its pid exists with the same start
// time. An owner whose start time is unknown (0) is judged by its pid.
func alive(o Owner) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(o.PID) + "/stat")
	if err != nil {
		return false
	}
	start, err := parseStatStart(b)
	if err != nil || o.Start == 0 {
		return true // it exists; better to keep a fault than end a live one early
	}
	return start == o.Start
}

// parseStatStart reads starttime, the 22nd field of /proc/PID/stat. The
// second field, the command in parentheses, may hold spaces and ')', so
// the fields are counted from the last ')'.
func parseStatStart(b []byte) (uint64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("fault: /proc stat without a command field")
	}
	f := bytes.Fields(b[i+1:])
	const idx = 22 - 3 // fields after ')' start at the 3rd (state)
	if len(f) <= idx {
		return 0, errors.New("fault: /proc stat too short")
	}
	return strconv.ParseUint(string(f[idx]), 10, 64)
}
