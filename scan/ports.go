package scan

import (
	"bufio"
	_ "embed"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
)

//go:embed topports.txt
var topPortsText string

// TopPorts returns the n most commonly open TCP ports from reach's own list
// (scan/topports.txt documents its source and licence), most common first.
// n larger than the list returns the whole list.
func TopPorts(n int) []uint16 {
	all := topPorts()
	return all[:min(max(n, 0), len(all))]
}

// TopPortsLen is the length of reach's list of common ports.
func TopPortsLen() int { return len(topPorts()) }

var topPorts = sync.OnceValue(func() []uint16 {
	ports, err := parseTopPorts(topPortsText)
	if err != nil {
		panic("scan: embedded topports.txt: " + err.Error()) // a build defect, caught by the tests
	}
	return ports
})

func parseTopPorts(s string) ([]uint16, error) {
	var out []uint16
	seen := map[uint16]bool{}
	for i, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		n, err := strconv.ParseUint(f[0], 10, 16)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("line %d: %q is not a port", i+1, f[0])
		}
		if seen[uint16(n)] {
			return nil, fmt.Errorf("line %d: port %d listed twice", i+1, n)
		}
		seen[uint16(n)] = true
		out = append(out, uint16(n))
	}
	return out, nil
}

// Services maps TCP ports to service names.
type Services map[uint16]string

// Name returns the service name of port, or "unknown" as nmap prints it.
func (s Services) Name(port uint16) string {
	if n, ok := s[port]; ok {
		return n
	}
	return "unknown"
}

// ParseServices reads the services(5) format: "name port/proto aliases #
// comment". The first TCP name of each port wins.
func ParseServices(r io.Reader) (Services, error) {
	s := Services{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		num, proto, ok := strings.Cut(f[1], "/")
		if !ok || proto != "tcp" {
			continue
		}
		n, err := strconv.ParseUint(num, 10, 16)
		if err != nil || n == 0 {
			continue
		}
		if _, dup := s[uint16(n)]; !dup {
			s[uint16(n)] = f[0]
		}
	}
	return s, sc.Err()
}

// SystemServices reads /etc/services; a missing file gives an empty map.
func SystemServices() Services {
	f, err := os.Open("/etc/services")
	if err != nil {
		return Services{}
	}
	defer f.Close()
	s, _ := ParseServices(f)
	return s
}
