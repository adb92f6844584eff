package kstat

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
	"time"
)

// TestReadTree reads a /proc laid out in testdata, with and without
// nf_conntrack loaded.
func TestReadTree(t *testing.T) {
	s, err := read("testdata/proc-conntrack")
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Missing) != 0 {
		t.Errorf("missing %+v", s.Missing)
	}
	if s.Counters[ListenOverflows] != 12 || s.Counters[AttemptFails] != 7 {
		t.Errorf("counters: overflows %d, attempt fails %d", s.Counters[ListenOverflows], s.Counters[AttemptFails])
	}
	if s.PortRange != (PortRange{32768, 60999}) {
		t.Errorf("port range %v", s.PortRange)
	}
	c := s.Conntrack
	if c == nil || c.Count != 65536 || c.Max != 65536 || !c.Full() || c.Stats[ConntrackDrop] != 0x15 || c.Stats[ConntrackEarlyDrop] != 0x2e {
		t.Errorf("conntrack %+v", c)
	}

	s, err = read("testdata/proc-noconntrack")
	if err != nil {
		t.Fatal(err)
	}
	if s.Conntrack != nil || s.Conntrack.Full() {
		t.Errorf("conntrack %+v without nf_conntrack", s.Conntrack)
	}
	if len(s.Missing) != 1 || s.Missing[0].What != "conntrack" || s.Missing[0].Reason != MissingAbsent ||
		!errors.Is(s.Missing[0].Err, fs.ErrNotExist) || !strings.Contains(s.Missing[0].Error, "module is not loaded") {
		t.Errorf("missing %+v, want conntrack absent: not loaded", s.Missing)
	}

	if _, err := read("testdata/no-such-proc"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("no /proc: %v", err)
	}
}

func TestDiff(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	before := Snapshot{Time: t0, Netns: 9, Counters: map[string]int64{ListenOverflows: 10, ListenDrops: 11, "Tcp.Gone": 1, "TcpExt.Wrap": -2},
		Conntrack: &Conntrack{Count: 5, Max: 100, Stats: map[string]int64{ConntrackDrop: 1}}, PortRange: PortRange{1, 2}}
	after := Snapshot{Time: t0.Add(1500 * time.Millisecond), Netns: 9, Counters: map[string]int64{ListenOverflows: 22, ListenDrops: 25, "Tcp.New": 4, "TcpExt.Wrap": 1},
		Conntrack: &Conntrack{Count: 100, Max: 100, Stats: map[string]int64{ConntrackDrop: 8}}, PortRange: PortRange{3, 4}}
	d, err := Diff(before, after)
	if err != nil {
		t.Fatal(err)
	}
	if d.Interval != 1500*time.Millisecond || d.Netns != 9 || d.PortRange != (PortRange{3, 4}) {
		t.Errorf("delta %+v", d)
	}
	want := map[string]int64{ListenOverflows: 12, ListenDrops: 14, "TcpExt.Wrap": 3} // 2^64-2 -> 1
	if len(d.Counters) != len(want) {
		t.Errorf("counters %v, want %v", d.Counters, want)
	}
	for k, v := range want {
		if d.Counters[k] != v {
			t.Errorf("%s = %d, want %d", k, d.Counters[k], v)
		}
	}
	if c := d.Conntrack; c == nil || c.Count != 100 || !c.Full() || c.Stats[ConntrackDrop] != 7 {
		t.Errorf("conntrack %+v", c)
	}
	if before.Conntrack.Stats[ConntrackDrop] != 1 || after.Conntrack.Stats[ConntrackDrop] != 8 {
		t.Error("Diff changed its arguments")
	}
	after.Conntrack = nil
	if d, _ := Diff(before, after); d.Conntrack != nil {
		t.Errorf("conntrack %+v when after has none", d.Conntrack)
	}
	after.Netns = 10
	if _, err := Diff(before, after); !errors.Is(err, ErrOtherNamespace) {
		t.Errorf("other namespace: %v", err)
	}
}
