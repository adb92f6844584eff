package endpoint

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
)

// portError distinguishes range errors from syntax errors inside port parsing.
type portError struct {
	sentinel error
	msg      string
}

func (e *portError) Error() string { return e.msg }

func parseErrFromPort(in string, err error) error {
	var pe *portError
	if errors.As(err, &pe) {
		return parseErr(in, pe.sentinel, "%s", pe.msg)
	}
	return parseErr(in, ErrSyntax, "%v", err)
}

// parsePort parses a decimal port 1-65535 or a TCP service name.
func parsePort(s string) (uint16, error) {
	if s == "" {
		return 0, &portError{ErrSyntax, "empty port"}
	}
	if isDigits(s) {
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil || n < 1 || n > 65535 {
			return 0, &portError{ErrPortRange, "port out of range 1-65535"}
		}
		return uint16(n), nil
	}
	if s[0] == '-' || s[0] == '+' {
		return 0, &portError{ErrPortRange, "port out of range 1-65535"}
	}
	// Service names come from the local services database only; no network.
	n, err := net.LookupPort("tcp", s)
	if err != nil || n < 1 || n > 65535 {
		return 0, &portError{ErrSyntax, fmt.Sprintf("unknown port or service %q (see /etc/services)", s)}
	}
	return uint16(n), nil
}

func isDigits(s string) bool {
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// ParsePorts parses a port list such as "22,80,8000-8100", "ssh,https",
// "-" (all ports), "-1024" (1-1024) or "60000-" (60000-65535), the forms nmap
// users know. The result is sorted and free of duplicates.
func ParsePorts(s string) ([]uint16, error) {
	in := s
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, parseErr(in, ErrSyntax, "empty port list; want e.g. 22,80,8000-8100")
	}
	var set [65536]bool
	n := 0
	add := func(lo, hi int) {
		for p := lo; p <= hi; p++ {
			if !set[p] {
				set[p] = true
				n++
			}
		}
	}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return nil, parseErr(in, ErrSyntax, "empty item in port list")
		}
		lo, hi, err := parseRange(item)
		if err != nil {
			return nil, parseErrFromPort(in, err)
		}
		add(lo, hi)
	}
	out := make([]uint16, 0, n)
	for p := 1; p < len(set); p++ {
		if set[p] {
			out = append(out, uint16(p))
		}
	}
	return out, nil
}

func parseRange(item string) (lo, hi int, err error) {
	i := strings.IndexByte(item, '-')
	if i < 0 {
		p, err := parsePort(item)
		return int(p), int(p), err
	}
	loS, hiS := item[:i], item[i+1:]
	lo, hi = 1, 65535
	if loS != "" {
		p, err := parsePort(loS)
		if err != nil {
			return 0, 0, err
		}
		lo = int(p)
	}
	if hiS != "" {
		p, err := parsePort(hiS)
		if err != nil {
			return 0, 0, err
		}
		hi = int(p)
	}
	if lo > hi {
		return 0, 0, &portError{ErrSyntax, fmt.Sprintf("range %q runs backwards", item)}
	}
	return lo, hi, nil
}

// FormatPorts renders a sorted port list compactly: "22,80,8000-8100".
func FormatPorts(ports []uint16) string {
	ps := slices.Clone(ports)
	slices.Sort(ps)
	ps = slices.Compact(ps)
	var b strings.Builder
	for i := 0; i < len(ps); {
		j := i
		for j+1 < len(ps) && ps[j+1] == ps[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(int(ps[i])))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(int(ps[j])))
		}
		i = j + 1
	}
	return b.String()
}
