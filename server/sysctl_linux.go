package server

import (
	"os"
	"strconv"
	"strings"
)

// unprivilegedPortStart reads net.ipv4.ip_unprivileged_port_start for the
// calling thread's network namespace.
func unprivilegedPortStart() (int, bool) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start")
	if err != nil {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return n, err == nil
}

// ipv6Disabled reports whether net.ipv6.conf.all.disable_ipv6 is 1 in the
// calling thread's network namespace.
func ipv6Disabled() bool {
	b, err := os.ReadFile("/proc/sys/net/ipv6/conf/all/disable_ipv6")
	return err == nil && strings.TrimSpace(string(b)) == "1"
}
