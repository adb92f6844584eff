package agent

import (
	"slices"
	"testing"
	"time"

	"github.com/reach-tools/reach/internal/testnet"
)

// An agent given two hubs sends to the first while it accepts, then to the
// second: every result is numbered, and the two hubs together have every
// number from the first on, none missing, however the switch fell.
func TestAgentFailsOverBetweenHubs(t *testing.T) {
	open := testnet.Serve(t, testnet.HangUp)
	pl := probeList(20*time.Millisecond, open)
	first, srvA := newFakeHub(t, pl)
	second, srvB := newFakeHub(t, pl)
	runAgent(t, Config{Name: "a", Hub: srvA.URL, Hubs: []string{srvB.URL}, Token: testToken,
		MinInterval: time.Millisecond, ReportEvery: 30 * time.Millisecond})

	testnet.Eventually(t, 10*time.Second, "the first hub has results", func() bool {
		return len(first.results()) >= 5
	})
	if n := len(second.results()); n != 0 {
		t.Fatalf("the second hub got %d results while the first accepted", n)
	}
	srvA.Close() // refused from now on
	testnet.Eventually(t, 20*time.Second, "the second hub has results", func() bool {
		return len(second.results()) >= 10
	})

	seen := map[uint64]bool{}
	var last uint64
	for _, f := range []*fakeHub{first, second} {
		f.mu.Lock()
		for _, b := range f.batches {
			for i := range b.Results {
				seen[b.Seq+uint64(i)] = true
				last = max(last, b.Seq+uint64(i))
			}
		}
		f.mu.Unlock()
	}
	var missing []uint64
	for s := uint64(1); s <= last; s++ {
		if !seen[s] {
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		t.Errorf("results %v of 1..%d reached neither hub", missing[:min(10, len(missing))], last)
	}
}

func TestSplitHubs(t *testing.T) {
	for _, c := range []struct {
		in   []string
		want []string
	}{
		{nil, nil},
		{[]string{"http://a:1"}, []string{"http://a:1"}},
		{[]string{"http://a:1,http://b:2", " http://c:3 ", ","}, []string{"http://a:1", "http://b:2", "http://c:3"}},
	} {
		if got := SplitHubs(c.in); !slices.Equal(got, c.want) {
			t.Errorf("SplitHubs(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if _, err := New(Config{Name: "a", Hub: "http://a:1", Hubs: []string{"https://b:2"}, Token: testToken}); err == nil {
		t.Error("hubs of mixed schemes were accepted")
	}
}
