package netlab

import (
	"strings"
	"testing"
)

func TestIptablesUndo(t *testing.T) {
	policy := func(table, chain string) (string, error) { return "ACCEPT", nil }
	got, err := iptablesUndo(`# a comment
*filter
:FORWARD DROP [0:0]
:LAB - [0:0]
-N LAB2
-P INPUT DROP
-A FORWARD -j LAB
-I LAB 1 -m comment --comment "two words" -j DROP
-I LAB2 -s 198.18.0.1/32 -j RETURN
COMMIT
*nat
-A OUTPUT -p tcp -m tcp --dport 1 -j DNAT --to-destination 127.0.0.1:2
COMMIT
`, policy)
	if err != nil {
		t.Fatal(err)
	}
	want := `*nat
-D OUTPUT -p tcp -m tcp --dport 1 -j DNAT --to-destination 127.0.0.1:2
COMMIT
*filter
:FORWARD ACCEPT [0:0]
-P INPUT ACCEPT
-D LAB2 -s 198.18.0.1/32 -j RETURN
-D LAB -m comment --comment "two words" -j DROP
-D FORWARD -j LAB
-X LAB2
-X LAB
COMMIT
`
	if got != want {
		t.Errorf("undo:\n%s\nwant:\n%s", got, want)
	}
	for _, bad := range []string{"-A INPUT -j DROP", "*filter\n-F INPUT", "*filter\n-D INPUT -j DROP", "*filter\n-R INPUT 1 -j DROP"} {
		if _, err := iptablesUndo(bad, policy); err == nil {
			t.Errorf("iptablesUndo(%q) succeeded; want an error", bad)
		}
	}
}

// The undo parser reads whatever a test writes; it must never panic, and
// every rule it undoes is one the input added.
func FuzzIptablesUndo(f *testing.F) {
	f.Add("*filter\n:X - [0:0]\n-A INPUT -j X\n-I X 2 -j DROP\nCOMMIT\n")
	f.Add("*nat\n-I\n-A\n:\n-P A\nCOMMIT")
	f.Fuzz(func(t *testing.T, rules string) {
		undo, err := iptablesUndo(rules, func(string, string) (string, error) { return "ACCEPT", nil })
		if err != nil {
			return
		}
		added := map[string]bool{}
		for line := range strings.Lines(rules) {
			if f := strings.Fields(line); len(f) >= 2 && (f[0] == "-A" || f[0] == "-I") {
				added[f[1]] = true
			}
		}
		for line := range strings.Lines(undo) {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "-D" && !added[f[1]] {
				t.Errorf("undo deletes from %s, which the rules never added to:\n%s", f[1], rules)
			}
		}
	})
}

func TestErrLine(t *testing.T) {
	for out, want := range map[string]string{
		"iptables-restore v1.8.9 (nf_tables): unknown option \"--dprt\"\nError occurred at line: 3\n": "3",
		"iptables-restore: line 12 failed: No chain/target/match by that name.":                       "12",
		"/dev/stdin:4:7-10: Error: syntax error, unexpected string":                                   "4",
		"iptables-restore: COMMIT expected at line 7":                                                 "7",
	} {
		if m := errLine.FindStringSubmatch(out); m == nil || m[1] != want {
			t.Errorf("errLine(%q) = %v, want %s", out, m, want)
		}
	}
}
