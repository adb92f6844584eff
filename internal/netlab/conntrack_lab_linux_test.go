package netlab_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reach-tools/reach/internal/netlab"
)

// TestFillConntrack fills a namespace's table to the limit: a new
// connection there is dropped for want of an entry, while another
// namespace connects as before.
func TestFillConntrack(t *testing.T) {
	netlab.Require(t)
	lab := netlab.New(t)
	full, other := lab.Host("full"), lab.Host("other")
	for _, h := range []*netlab.Host{full, other} {
		h.Iptables(t, "-A", "OUTPUT", "-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP")
	}
	start := time.Now()
	made := full.FillConntrack(t)
	t.Logf("%d entries in %v", made, time.Since(start))
	max := readInt(t, "/proc/sys/net/netfilter/nf_conntrack_max")
	var count int
	full.Do(func() error { count = readInt(t, "/proc/sys/net/netfilter/nf_conntrack_count"); return nil })
	if count != max || made == 0 {
		t.Fatalf("made %d, count %d of %d", made, count, max)
	}
	for _, h := range []*netlab.Host{full, other} {
		ln := h.Listen(t, "tcp", "127.0.0.1:0")
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		c, err := h.DialContext(ctx, "tcp", ln.Addr().String())
		cancel()
		t.Logf("%s: %v", h.Name(), err)
		if (err == nil) != (h == other) {
			t.Errorf("%s: dial: %v", h.Name(), err)
		}
		if c != nil {
			c.Close()
		}
	}
}

func readInt(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}
