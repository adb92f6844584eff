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
