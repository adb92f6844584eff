package sockets

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/reach-tools/reach/internal/testnet"
)

// ssListening runs `ss -ltnpH` and returns, for each listening address, the
// sorted pids ss names as its owners.
func ssListening(t *testing.T) map[netip.AddrPort][]int {
	t.Helper()
	out, err := exec.Command("ss", "-ltnpH").Output()
	if err != nil {
		t.Skipf("ss -ltnpH: %v (install iproute2)", err)
	}
	got, err := parseSS(string(out))
	if err != nil {
		t.Fatalf("%v in ss output:\n%s", err, out)
	}
	return got
}

var ssPID = regexp.MustCompile(`pid=(\d+)`)

// parseSS parses `ss -ltnpH` lines: State Recv-Q Send-Q Local Peer [users:((...))].
func parseSS(out string) (map[netip.AddrPort][]int, error) {
	m := map[netip.AddrPort][]int{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 5 {
			return nil, fmt.Errorf("short line %q", line)
		}
		local := f[3]
		if i := strings.LastIndexByte(local, ':'); i > 0 {
			host, port := local[:i], local[i+1:]
			if j := strings.IndexByte(host, '%'); j >= 0 {
				host = host[:j] // interface binding, as in 127.0.0.53%lo
			}
			if host == "*" {
				host = "[::]"
			}
			local = host + ":" + port
		}
		ap, err := netip.ParseAddrPort(local)
		if err != nil {
			return nil, fmt.Errorf("local address %q: %w", f[3], err)
		}
		pids := m[ap]
		for _, sub := range ssPID.FindAllStringSubmatch(strings.Join(f[5:], " "), -1) {
			pid, _ := strconv.Atoi(sub[1])
			if !slices.Contains(pids, pid) {
				pids = append(pids, pid)
			}
		}
		slices.Sort(pids)
		m[ap] = pids
	}
	return m, nil
}

func ourListening(t *testing.T) map[netip.AddrPort][]int {
	t.Helper()
	tab, err := List(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := map[netip.AddrPort][]int{}
	for _, s := range tab.Sockets {
		pids := m[s.Local]
		for _, p := range s.Processes {
			if !slices.Contains(pids, p.PID) {
				pids = append(pids, p.PID)
			}
		}
		slices.Sort(pids)
		m[s.Local] = pids
	}
	return m
}

func TestParseSS(t *testing.T) {
	out := `LISTEN 0      4096   127.0.0.53%lo:53        0.0.0.0:*    users:(("systemd-resolve",pid=612,fd=14))
LISTEN 0      128          0.0.0.0:22        0.0.0.0:*    users:(("sshd",pid=900,fd=3),("sshd",pid=901,fd=3))
LISTEN 0      128                *:8080            *:*
LISTEN 0      128             [::]:22           [::]:*    users:(("sshd",pid=900,fd=4))
`
	got, err := parseSS(out)
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort
	want := map[netip.AddrPort][]int{ap("127.0.0.53:53"): {612}, ap("0.0.0.0:22"): {900, 901}, ap("[::]:8080"): nil, ap("[::]:22"): {900}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// TestMatchesSS compares our listening table with ss. In the shared root
// namespace other programs come and go, so only our own listeners are
// compared, and they must carry our pid in both.
func TestMatchesSS(t *testing.T) {
	a := testnet.AddrPort(testnet.Listen(t))
	child, b := startListener(t)
	ss, ours := ssListening(t), ourListening(t)
	for ap, pid := range map[netip.AddrPort]int{a: os.Getpid(), netip.AddrPortFrom(a.Addr(), b): child.Process.Pid} {
		if !slices.Equal(ss[ap], []int{pid}) || !slices.Equal(ours[ap], []int{pid}) {
			t.Errorf("%v: ss says pids %v, we say %v; want [%d]", ap, ss[ap], ours[ap], pid)
		}
	}
}
