package kstat

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrSyntax means a counter file is not laid out as the kernel writes it.
var ErrSyntax = errors.New("kstat: malformed counter file")

// parseCounters reads /proc/net/snmp or /proc/net/netstat into into, keyed
// "Group.Name". Both are pairs of lines, names then values:
//
//	TcpExt: SyncookiesSent SyncookiesRecv ... ListenOverflows ListenDrops ...
//	TcpExt: 0 0 ... 12 12 ...
func parseCounters(text string, into map[string]int64) error {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if len(lines)%2 != 0 {
		return fmt.Errorf("%w: %d lines, want pairs of names and values", ErrSyntax, len(lines))
	}
	for i := 0; i < len(lines); i += 2 {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || len(values) == 0 || names[0] != values[0] || !strings.HasSuffix(names[0], ":") {
			return fmt.Errorf("%w: line %d %q does not pair with %q", ErrSyntax, i+1, lines[i], lines[i+1])
		}
		if len(names) != len(values) {
			return fmt.Errorf("%w: %s %d names, %d values", ErrSyntax, names[0], len(names)-1, len(values)-1)
		}
		group := strings.TrimSuffix(names[0], ":")
		for j, name := range names[1:] {
			v, err := parseValue(values[j+1])
			if err != nil {
				return fmt.Errorf("%w: %s.%s = %q", ErrSyntax, group, name, values[j+1])
			}
			into[group+"."+name] = v
		}
	}
	return nil
}

// parseValue parses a decimal counter: signed (Tcp MaxConn is -1) or an
// unsigned 64-bit one, kept as its bits.
func parseValue(s string) (int64, error) {
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		return v, nil
	}
	u, err := strconv.ParseUint(s, 10, 64)
	return int64(u), err
}

// parseNumber parses a sysctl holding one decimal number.
func parseNumber(text string) (int64, error) {
	v, err := strconv.ParseInt(strings.TrimSpace(text), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q is not a number", ErrSyntax, strings.TrimSpace(text))
	}
	return v, nil
}

// parsePortRange parses net.ipv4.ip_local_port_range, "32768\t60999".
func parsePortRange(text string) (PortRange, error) {
	f := strings.Fields(text)
	if len(f) != 2 {
		return PortRange{}, fmt.Errorf("%w: port range %q", ErrSyntax, text)
	}
	lo, err1 := strconv.ParseUint(f[0], 10, 16)
	hi, err2 := strconv.ParseUint(f[1], 10, 16)
	if err1 != nil || err2 != nil || lo > hi {
		return PortRange{}, fmt.Errorf("%w: port range %q", ErrSyntax, text)
	}
	return PortRange{Low: uint16(lo), High: uint16(hi)}, nil
}

// parseConntrackStat reads /proc/net/stat/nf_conntrack: a line of column
// names, then one line per CPU of 8-digit hex values. Columns are summed over
// CPUs, except "entries", which every line repeats (it is the table's count)
// and which is left out. The columns differ between kernels (4.x has
// "searched", 5.x+ "clashres", "chainlength"), so they are kept by name.
func parseConntrackStat(text string) (map[string]int64, error) {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	names := strings.Fields(lines[0])
	if len(names) == 0 || len(lines) < 2 {
		return nil, fmt.Errorf("%w: nf_conntrack stats without a heading or any CPU", ErrSyntax)
	}
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] || strings.Trim(n, "abcdefghijklmnopqrstuvwxyz_") != "" {
			return nil, fmt.Errorf("%w: nf_conntrack stats heading %q", ErrSyntax, lines[0])
		}
		seen[n] = true
	}
	stats := make(map[string]int64, len(names))
	for i, line := range lines[1:] {
		values := strings.Fields(line)
		if len(values) != len(names) {
			return nil, fmt.Errorf("%w: nf_conntrack stats line %d has %d values for %d columns",
				ErrSyntax, i+2, len(values), len(names))
		}
		for j, v := range values {
			n, err := strconv.ParseUint(v, 16, 64)
			if err != nil {
				return nil, fmt.Errorf("%w: nf_conntrack stats line %d: %s = %q", ErrSyntax, i+2, names[j], v)
			}
			if names[j] != "entries" {
				stats[names[j]] = int64(uint64(stats[names[j]]) + n)
			}
		}
	}
	return stats, nil
}
