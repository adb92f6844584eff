package fault

import (
	"net/netip"
	"os"
	"reflect"
	"strconv"
	"testing"
	"time"
)

func TestParseNftTable(t *testing.T) {
	b, err := os.ReadFile("testdata/nft-table.json")
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseNftTable(b)
	if err != nil {
		t.Fatal(err)
	}
	want := []rule{
		{Tool: "nft", Handle: 2, Comment: "reach-fault/1 9b0dbcde refuse port=7000 exp=1796489664 own=20671.1221068", Source: netip.MustParsePrefix("198.18.0.0/24")},
		{Tool: "nft", Handle: 3, Comment: "someone else's"},
		{Tool: "nft", Handle: 4, Comment: "reach-fault/1 0a0b0c0d reject-icmp port=7001 exp=1796489000 own=1.2 p=0.25", Source: netip.MustParsePrefix("fd00::2/128")},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	for _, bad := range []string{``, `{`, `{"nftables": [{"rule": {"family": "inet", "table": "reach_fault", "chain": "input"}}]}`,
		`{"nftables": [{"rule": []}]}`} {
		if _, err := parseNftTable([]byte(bad)); err == nil {
			t.Errorf("parseNftTable(%q): no error", bad)
		}
	}
}

func TestParseIptablesSave(t *testing.T) {
	b, err := os.ReadFile("testdata/iptables-save.txt")
	if err != nil {
		t.Fatal(err)
	}
	got := parseIptablesSave(b, "iptables")
	want := iptState{chain: true, jump: true, rules: []rule{
		{Tool: "iptables", Handle: 1, Comment: "reach-fault/1 3e6ee5a1 drop port=7000 exp=1796489688 own=20968.1221783 p=0.5", Source: netip.MustParsePrefix("198.18.0.0/24")},
		{Tool: "iptables", Handle: 2, Comment: "mine"},
		{Tool: "iptables", Handle: 3, Comment: "reach-fault/1 11111111 refuse port=7002 exp=1796489000 own=5.6", Source: netip.MustParsePrefix("198.18.0.7/32")},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if st := parseIptablesSave([]byte("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n"), "iptables"); st.chain || st.jump || st.rules != nil {
		t.Errorf("an empty filter table gave %+v", st)
	}
}

func TestIptComment(t *testing.T) {
	for in, want := range map[string]string{
		`-A X -m comment --comment bare -j DROP`:             "bare",
		`-A X -m comment --comment "two words" -j DROP`:      "two words",
		`-A X -m comment --comment "say \"hi\" \\ " -j DROP`: `say "hi" \ `,
		`-A X -m comment --comment "open -j DROP`:            "",
		`-A X -j DROP`: "",
	} {
		if got := iptComment(in); got != want {
			t.Errorf("iptComment(%q) = %q, want %q", in, got, want)
		}
	}
}

// The rules reach writes are the ones it reads back.
func TestWrittenRulesReadBack(t *testing.T) {
	m := Marker{ID: "0a0b0c0d", Mode: RejectICMP, Port: 7001, Expires: time.Unix(1796489000, 0),
		Owner: Owner{1, 2}, Probability: 0.25}
	src := netip.MustParsePrefix("198.18.0.0/24")
	line := "-A " + iptChain
	args := iptRuleArgs(m, src, false)
	for i, a := range args {
		if i > 0 && args[i-1] == "--comment" {
			a = strconv.Quote(a) // as iptables-save quotes a comment with spaces
		}
		line += " " + a
	}
	st := parseIptablesSave([]byte("*filter\n"+line+"\nCOMMIT\n"), "iptables")
	if len(st.rules) != 1 || st.rules[0].Source != src {
		t.Fatalf("%q read as %+v", line, st)
	}
	if got, err := ParseMarker(st.rules[0].Comment); err != nil || got != m {
		t.Errorf("marker %+v, %v; want %+v", got, err, m)
	}
}

func TestParseStatStart(t *testing.T) {
	stat := "20671 (reach) fault) S 1 20671 20671 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 1221068 1000 10 18446744073709551615"
	if got, err := parseStatStart([]byte(stat)); err != nil || got != 1221068 {
		t.Errorf("got %d, %v; want 1221068", got, err)
	}
	for _, bad := range []string{"", "1 (x) S 1 2", "no paren"} {
		if _, err := parseStatStart([]byte(bad)); err == nil {
			t.Errorf("parseStatStart(%q): no error", bad)
		}
	}
	o := self()
	if o.Start == 0 || !alive(o) {
		t.Errorf("self() = %+v, alive %v", o, alive(o))
	}
	if alive(Owner{PID: o.PID, Start: o.Start + 1}) {
		t.Errorf("another start time of our pid passed for us")
	}
}

func FuzzParseNftTable(f *testing.F) {
	b, _ := os.ReadFile("testdata/nft-table.json")
	f.Add(b)
	f.Add([]byte(`{"nftables": []}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		rules, err := parseNftTable(b)
		if err != nil {
			return
		}
		for _, r := range rules {
			if r.Handle <= 0 || r.Source.IsValid() && r.Source.Bits() < 0 {
				t.Fatalf("rule %+v", r)
			}
		}
	})
}

func FuzzParseIptablesSave(f *testing.F) {
	b, _ := os.ReadFile("testdata/iptables-save.txt")
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		st := parseIptablesSave(b, "iptables")
		for i, r := range st.rules {
			if r.Handle != i+1 {
				t.Fatalf("rule %d numbered %d", i, r.Handle)
			}
		}
	})
}

func FuzzParseStatStart(f *testing.F) {
	f.Add([]byte("1 (a) b) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99 0"))
	f.Fuzz(func(t *testing.T, b []byte) { parseStatStart(b) })
}
