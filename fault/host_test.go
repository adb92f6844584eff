package fault

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// fakeFirewall answers nft and iptables commands from canned output and
// records every command run, with its stdin.
type fakeFirewall struct {
	nftTable []byte // nft -j list table output; nil: no table
	iptSave  []byte // iptables-save -t filter; nil: no iptables
	noNft    bool
	ran      []string
}

func (f *fakeFirewall) exec(_ context.Context, stdin, name string, args ...string) ([]byte, error) {
	cmd := strings.Join(append([]string{name}, args...), " ")
	if stdin != "" {
		cmd += " <<< " + stdin
	}
	f.ran = append(f.ran, cmd)
	switch {
	case name == "nft" && f.noNft:
		return nil, exec.ErrNotFound
	case name == "nft" && slices.Contains(args, "-j"):
		if f.nftTable == nil {
			return []byte("Error: No such file or directory"), errors.New("exit status 1")
		}
		return f.nftTable, nil
	case name == "iptables-save":
		if f.iptSave == nil {
			return nil, exec.ErrNotFound
		}
		return f.iptSave, nil
	case name == "ip6tables-save":
		return nil, exec.ErrNotFound
	}
	return nil, nil
}

// writes are the commands that change something.
func (f *fakeFirewall) writes() []string {
	var w []string
	for _, c := range f.ran {
		if strings.Contains(c, " -f -") || strings.Contains(c, " -D ") || strings.Contains(c, " -A ") ||
			strings.Contains(c, " -I ") || strings.Contains(c, " -N ") || strings.Contains(c, " -X ") {
			w = append(w, c)
		}
	}
	return w
}

func testHost(t *testing.T, f *fakeFirewall, now time.Time, alive ...int) *Host {
	if runtime.GOOS != "linux" {
		t.Skip("faults are Linux's")
	}
	return &Host{Exec: f.exec, LockPath: t.TempDir() + "/lock", Now: func() time.Time { return now },
		Alive: func(o Owner) bool { return slices.Contains(alive, o.PID) }}
}

func readFile(t *testing.T, name string) []byte {
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The fixture's nft table holds 9b0dbcde (owner 20671, expires 1796489664),
// a rule reach did not write (handle 3), and 0a0b0c0d (owner 1, expires
// 1796489000).
func TestSweepNft(t *testing.T) {
	for _, tc := range []struct {
		name  string
		now   int64
		alive []int
		want  []string // writes
		left  []string // Leftover of each removed fault
	}{
		{"all live", 1796489000 - 1, []int{1, 20671}, nil, nil},
		{"one expired", 1796489000, []int{1, 20671}, []string{"nft -f - <<< delete rule inet reach_fault input handle 4\n"}, []string{"expired"}},
		{"one orphaned", 1796489000 - 1, []int{1}, []string{"nft -f - <<< delete rule inet reach_fault input handle 2\n"}, []string{"owner gone"}},
		// A rule reach did not write stays, and the table with it.
		{"both gone", 1796489664, nil, []string{"nft -f - <<< delete rule inet reach_fault input handle 2\ndelete rule inet reach_fault input handle 4\n"},
			[]string{"expired", "expired"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeFirewall{nftTable: readFile(t, "testdata/nft-table.json")}
			h := testHost(t, f, time.Unix(tc.now, 0), tc.alive...)
			removed, err := h.Sweep(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			var left []string
			for _, a := range removed {
				left = append(left, a.Leftover)
			}
			if !slices.Equal(f.writes(), tc.want) || !slices.Equal(left, tc.left) {
				t.Errorf("writes %q, removed %q\nwant %q, %q", f.writes(), left, tc.want, tc.left)
			}
		})
	}
}

// Clear removes every fault, and the table once nothing else is in it.
func TestClearNftDeletesTable(t *testing.T) {
	table := `{"nftables": [{"table": {"family": "inet", "name": "reach_fault"}}, {"rule": {"family": "inet", "table": "reach_fault", "chain": "input", "handle": 7, "comment": "reach-fault/1 9b0dbcde refuse port=7000 exp=1796489664 own=20671.1221068", "expr": []}}]}`
	f := &fakeFirewall{nftTable: []byte(table)}
	h := testHost(t, f, time.Unix(1, 0), 20671)
	removed, err := h.Clear(context.Background())
	if err != nil || len(removed) != 1 || removed[0].Leftover != "" {
		t.Fatalf("removed %+v, %v", removed, err)
	}
	if want := []string{"nft -f - <<< delete table inet reach_fault\n"}; !slices.Equal(f.writes(), want) {
		t.Errorf("writes %q, want %q", f.writes(), want)
	}
}

// In iptables, rules are deleted by number from the last, so the numbers
// stay right; a rule reach did not write keeps the chain and the jump.
func TestSweepIptables(t *testing.T) {
	f := &fakeFirewall{noNft: true, iptSave: readFile(t, "testdata/iptables-save.txt")}
	h := testHost(t, f, time.Unix(1796489688, 0))
	removed, err := h.Sweep(context.Background())
	if err != nil || len(removed) != 2 {
		t.Fatalf("removed %+v, %v", removed, err)
	}
	want := []string{"iptables -w 5 -D REACH-FAULT 3", "iptables -w 5 -D REACH-FAULT 1"}
	if !slices.Equal(f.writes(), want) {
		t.Errorf("writes %q, want %q", f.writes(), want)
	}
	// Without the foreign rule, the chain and our jump go too.
	save := strings.ReplaceAll(string(readFile(t, "testdata/iptables-save.txt")),
		"-A REACH-FAULT -p tcp -m tcp --dport 9 -m comment --comment mine -j DROP\n", "")
	f = &fakeFirewall{noNft: true, iptSave: []byte(save)}
	if _, err := testHost(t, f, time.Unix(1796489688, 0)).Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	want = []string{"iptables -w 5 -D REACH-FAULT 2", "iptables -w 5 -D REACH-FAULT 1",
		"iptables -w 5 -D INPUT -m comment --comment reach-fault/1 jump -j REACH-FAULT", "iptables -w 5 -X REACH-FAULT"}
	if !slices.Equal(f.writes(), want) {
		t.Errorf("writes %q\nwant %q", f.writes(), want)
	}
}

// Apply sweeps first, then adds one rule whose marker names this process
// and an expiry rounded up to the second.
func TestApplyNft(t *testing.T) {
	f := &fakeFirewall{nftTable: readFile(t, "testdata/nft-table.json")}
	now := time.Unix(1796489000, 500)
	h := testHost(t, f, now, os.Getpid(), 20671)
	spec := Spec{Mode: Drop, Port: 5432, For: 2 * time.Second, Probability: 0.5, Source: netip.MustParsePrefix("fd00::/64")}
	a, err := h.Apply(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if a.Expires != time.Unix(1796489003, 0) || a.Owner.PID != os.Getpid() || a.Backend != "nft" || a.Rules != 1 {
		t.Errorf("applied %+v", a)
	}
	w := f.writes()
	if len(w) != 2 || !strings.Contains(w[0], "delete rule inet reach_fault input handle 4") {
		t.Fatalf("writes %q; want the sweep of handle 4, then the add", w)
	}
	want := "add rule inet reach_fault input ip6 saddr fd00::/64 tcp dport 5432 tcp flags & (syn | ack) == syn " +
		"numgen random mod 10000 < 5000 drop comment \"" + a.Marker.String() + "\"\n"
	if !strings.HasSuffix(w[1], want) || !strings.Contains(w[1], "add table inet reach_fault\n") {
		t.Errorf("add script:\n%s\nwant it to end with\n%s", w[1], want)
	}
}

// iptables gets a rule per family whose source fits, then the jump.
func TestApplyIptables(t *testing.T) {
	f := &fakeFirewall{noNft: true, iptSave: []byte("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n")}
	h := testHost(t, f, time.Unix(1796489000, 0), os.Getpid())
	h.Backend = "iptables"
	a, err := h.Apply(context.Background(), Spec{Mode: Refuse, Port: 80, For: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"iptables -w 5 -N REACH-FAULT",
		"iptables -w 5 -A REACH-FAULT -p tcp -m tcp --dport 80 --tcp-flags SYN,ACK SYN -m comment --comment " +
			a.Marker.String() + " -j REJECT --reject-with tcp-reset",
		"iptables -w 5 -I INPUT 1 -m comment --comment reach-fault/1 jump -j REACH-FAULT",
	}
	if !slices.Equal(f.writes(), want) {
		t.Errorf("writes %q\nwant %q", f.writes(), want)
	}
}

func TestValidate(t *testing.T) {
	ok := Spec{Mode: Refuse, Port: 1, For: time.Second}
	for _, tc := range []struct {
		field string
		edit  func(*Spec)
	}{
		{"", func(*Spec) {}},
		{"", func(s *Spec) { s.For = MaxFor; s.Probability = 1 }},
		{"mode", func(s *Spec) { s.Mode = "stall" }},
		{"port", func(s *Spec) { s.Port = 0 }},
		{"for", func(s *Spec) { s.For = 0 }},
		{"for", func(s *Spec) { s.For = MaxFor + 1 }},
		{"probability", func(s *Spec) { s.Probability = 1.5 }},
		{"probability", func(s *Spec) { s.Probability = 0.00001 }},
		{"source", func(s *Spec) { s.Source = netip.MustParsePrefix("198.18.0.1/24") }},
	} {
		s := ok
		tc.edit(&s)
		err := s.Validate()
		var se *SpecError
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%+v: %v", s, err)
		case tc.field != "" && (!errors.As(err, &se) || se.Field != tc.field || !errors.Is(err, ErrInvalid)):
			t.Errorf("%+v: %v; want a SpecError on %s", s, err, tc.field)
		}
	}
}

// The remover removes a fault as soon as its owner is gone, and at the
// latest at its expiry plus WatchGrace, whatever its context says.
func TestWatch(t *testing.T) {
	table := readFile(t, "testdata/nft-table.json") // 9b0dbcde is handle 2
	a := Active{Marker: Marker{ID: "9b0dbcde", Owner: Owner{20671, 1221068}}}
	for _, tc := range []struct {
		name    string
		alive   bool
		expires time.Duration // from now
		within  time.Duration
	}{
		{"owner killed", false, time.Hour, time.Second},
		{"expired", true, -WatchGrace, time.Second},
		{"expires soon", true, 100*time.Millisecond - WatchGrace, 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeFirewall{nftTable: table}
			h := testHost(t, f, time.Now())
			h.Now = nil
			h.Alive = func(Owner) bool { return tc.alive }
			a := a
			a.Expires = time.Now().Add(tc.expires)
			begin := time.Now()
			if err := h.Watch(context.Background(), a, 10*time.Millisecond); err != nil {
				t.Fatal(err)
			}
			if took := time.Since(begin); took > tc.within {
				t.Errorf("took %v; want under %v", took, tc.within)
			}
			want := []string{"nft -f - <<< delete rule inet reach_fault input handle 2\n"}
			if !slices.Equal(f.writes(), want) {
				t.Errorf("writes %q, want %q", f.writes(), want)
			}
		})
	}
	// A fault already removed by its owner ends the watch with no write.
	f := &fakeFirewall{}
	h := testHost(t, f, time.Now(), 20671)
	h.Now = nil
	a.Expires = time.Now().Add(time.Hour)
	begin := time.Now()
	if err := h.Watch(context.Background(), a, time.Millisecond); err != nil || len(f.writes()) != 0 {
		t.Errorf("watch of a removed fault: %v, writes %q", err, f.writes())
	}
	if took := time.Since(begin); took > 5*time.Second {
		t.Errorf("watch of a removed fault took %v", took)
	}
}
