package firewall

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readTestdata(t testing.TB, dir, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", dir, file))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func pfRules(t *testing.T, file string) []PFRule {
	t.Helper()
	rules, err := ParsePfctl(bytes.NewReader(readTestdata(t, "macos", file)))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return rules
}

func TestDecidePF(t *testing.T) {
	for _, tc := range []struct {
		file, dst string
		block     bool
		line      int // 0: no rule decided
		unchecked string
	}{
		// macOS's default: only Apple's anchors, whose rules -sr does not list.
		{"macos13-pfctl-sr.txt", "198.18.0.5:8000", false, 0, ""},
		{"macos14-pfctl-sr-custom.txt", "198.18.0.5:22", false, 5, "on lo0"},
		// port 8000:8010, quick: refused, the later rules never looked at.
		{"macos14-pfctl-sr-custom.txt", "198.18.0.5:8005", true, 6, "on lo0"},
		{"macos14-pfctl-sr-custom.txt", "198.18.0.5:8011", true, 8, "on lo0"},
		// <trusted>'s members are not shown: the pass may apply.
		{"macos14-pfctl-sr-custom.txt", "198.18.0.5:5432", true, 8, "from table <trusted>"},
		// port { 80 443 } to 198.18.0.0/24, after port != 22 blocked it.
		{"macos14-pfctl-sr-custom.txt", "198.18.0.5:443", false, 9, "on lo0"},
		{"macos14-pfctl-sr-custom.txt", "198.19.0.5:443", true, 8, "on lo0"},
		// Whether the client comes by lo0 is not known here: the quick
		// pass on lo0 stays a condition of every incoming connection.
		{"macos14-pfctl-sr-custom.txt", "127.0.0.1:8080", true, 8, "on lo0"},
		{"macos15-pfctl-sr-expanded.txt", "198.18.0.5:1500", true, 5, ""},
		{"macos15-pfctl-sr-expanded.txt", "198.18.0.5:2048", false, 0, ""},
		{"macos15-pfctl-sr-expanded.txt", "[::1]:3000", false, 6, ""},
		{"macos15-pfctl-sr-expanded.txt", "198.18.0.5:443", false, 8, ""},
		{"macos15-pfctl-sr-expanded.txt", "198.18.0.5:9001", false, 0, "on en0"},
		// Recorded (opnsense/core#2866): both rules are on igb3, which
		// pfctl's output cannot tie to the connection; to ! 192.168.0.0/16
		// leaves a LAN destination to neither.
		{"opnsense2866-pfctl-rules.txt", "198.18.0.5:22", false, 0, "line 2 (block drop in log quick on igb3"},
		{"opnsense2866-pfctl-rules.txt", "192.168.1.5:22", false, 0, ""},
		// pfctl names ports: "port = ssh" is 22; xns-ch is not in
		// pfServices, so that rule may apply and is named.
		{"pfctl-sr-service-names.txt", "198.18.0.5:22", false, 2, ""},
		{"pfctl-sr-service-names.txt", "198.18.0.5:443", true, 1, "port xns-ch (a service name not known here)"},
		{"pfctl-sr-service-names.txt", "198.18.0.5:8000", true, 1, "line 4"},
	} {
		d := DecidePF(pfRules(t, tc.file), netip.MustParseAddrPort(tc.dst))
		line := 0
		if d.Rule != nil {
			line = d.Rule.Line
		}
		if d.Block != tc.block || line != tc.line {
			t.Errorf("%s %s: block %v by line %d, want %v by line %d", tc.file, tc.dst, d.Block, line, tc.block, tc.line)
		}
		if got := strings.Join(d.Unchecked, "; "); !strings.Contains(got, tc.unchecked) || (tc.unchecked == "") != (got == "") {
			t.Errorf("%s %s: unchecked %q, want %q", tc.file, tc.dst, got, tc.unchecked)
		}
	}
}

func TestParsePfctlRule(t *testing.T) {
	rules := pfRules(t, "macos14-pfctl-sr-custom.txt")
	r := rules[5] // block return in quick proto tcp from any to any port 8000:8010
	if r.Action != "block" || !r.Return || !r.Quick || r.Direction != "in" || r.Proto != "tcp" ||
		len(r.Ports) != 1 || r.Ports[0] != (PFPort{Op: ":", Lo: 8000, Hi: 8010}) {
		t.Errorf("%+v", r)
	}
	if got := pfRules(t, "macos15-pfctl-sr-expanded.txt")[6].From; !got.Not || got.Prefix != netip.MustParsePrefix("198.18.0.0/16") {
		t.Errorf("from ! 198.18.0.0/16: %+v", got)
	}
	for _, bad := range []string{"block in proto tcp to any port 99999", "pass in proto tcp to any port {", "pass in on", "block in to any port"} {
		if _, err := ParsePfctl(strings.NewReader(bad)); !errors.Is(err, ErrSyntax) {
			t.Errorf("%q: %v, want ErrSyntax", bad, err)
		}
	}
}

// TestParsePfctlRecorded reads rules a real pfctl printed (see the
// .source files) and checks what each says.
func TestParsePfctlRecorded(t *testing.T) {
	rules := pfRules(t, "opnsense2866-pfctl-rules.txt")
	if len(rules) != 2 {
		t.Fatalf("%d rules, want 2", len(rules))
	}
	lan := netip.MustParsePrefix("192.168.0.0/16")
	pass, block := rules[0], rules[1]
	if pass.Action != "pass" || !pass.Quick || pass.Direction != "in" || pass.Interface != "igb3" ||
		pass.Family != "inet" || pass.From.Prefix != lan || pass.From.Not ||
		!pass.To.Not || pass.To.Prefix != lan || pass.To.Any || len(pass.Ports) != 0 {
		t.Errorf("pass rule: %+v", pass)
	}
	named := pfRules(t, "pfctl-sr-service-names.txt")
	if got := named[1].Ports; len(got) != 1 || got[0] != (PFPort{Op: "=", Lo: 22, Name: "ssh"}) {
		t.Errorf("port = ssh: %+v", got)
	}
	if got := named[3].Ports; len(got) != 1 || got[0] != (PFPort{Op: "?", Name: "xns-ch"}) {
		t.Errorf("port = xns-ch: %+v", got)
	}
	for _, bad := range []string{"pass in proto tcp to any port > xns-ch", "pass in proto tcp to any port = 9x"} {
		if _, err := ParsePfctl(strings.NewReader(bad)); !errors.Is(err, ErrSyntax) {
			t.Errorf("%q: %v, want ErrSyntax", bad, err)
		}
	}
	if block.Action != "block" || block.Return || !block.Quick || block.Interface != "igb3" ||
		!block.From.Any || !block.To.Not || block.To.Prefix != lan {
		t.Errorf("block rule: %+v", block)
	}
}

func TestParseSocketfilterfw(t *testing.T) {
	for _, tc := range []struct {
		file                       string
		enabled, blockAll, stealth bool
	}{
		{"macos12-socketfilterfw.txt", true, false, true},
		{"macos15-socketfilterfw.txt", true, true, false},
		{"macos14-socketfilterfw-off.txt", false, false, false},
	} {
		st, err := ParseSocketfilterfw(bytes.NewReader(readTestdata(t, "macos", tc.file)))
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if st.Enabled == nil || st.BlockAll == nil || st.Stealth == nil ||
			*st.Enabled != tc.enabled || *st.BlockAll != tc.blockAll || *st.Stealth != tc.stealth {
			t.Errorf("%s: %+v", tc.file, st)
		}
	}
	// Recorded --getglobalstate lines (see the .source files): state 2
	// (block all incoming) was ErrSyntax before, its sentence says neither
	// enabled nor disabled.
	for _, tc := range []struct {
		file              string
		enabled, blockAll bool
	}{
		{"lynis41-socketfilterfw.txt", true, false},
		{"mcli160-socketfilterfw-state2.txt", true, true},
		{"macos15-socketfilterfw-state2.txt", true, true},
	} {
		st, err := ParseSocketfilterfw(bytes.NewReader(readTestdata(t, "macos", tc.file)))
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if st.Enabled == nil || *st.Enabled != tc.enabled || st.Stealth != nil ||
			(st.BlockAll != nil) != tc.blockAll || (tc.blockAll && !*st.BlockAll) {
			t.Errorf("%s: %+v", tc.file, st)
		}
	}
	for _, bad := range []string{"Firewall is enabled. (State = 7)\n", "Firewall is enabled. (State = x)\n"} {
		if _, err := ParseSocketfilterfw(strings.NewReader(bad)); !errors.Is(err, ErrSyntax) {
			t.Errorf("%q: %v, want ErrSyntax", bad, err)
		}
	}
	if _, err := ParseSocketfilterfw(strings.NewReader("Die Firewall ist aktiviert.\n")); !errors.Is(err, ErrSyntax) {
		t.Errorf("an unknown line: %v", err)
	}
}

// English and German netsh output decide alike.
func TestDecideWindows(t *testing.T) {
	for _, lang := range []string{"en", "de"} {
		profiles, err := ParseNetshProfiles(bytes.NewReader(readTestdata(t, "windows", "win11-"+lang+"-allprofiles.txt")))
		if err != nil || len(profiles) != 3 {
			t.Fatalf("%s profiles: %v %+v", lang, err, profiles)
		}
		rules, err := ParseNetshRules(bytes.NewReader(readTestdata(t, "windows", "win11-"+lang+"-rules.txt")))
		if err != nil {
			t.Fatalf("%s rules: %v", lang, err)
		}
		byName := map[string]WinProfile{}
		for _, p := range profiles {
			byName[p.Name] = p
		}
		for _, tc := range []struct {
			profile   string
			port      uint16
			block     bool
			rule      string // "" for the profile's default
			unchecked string
		}{
			{"private", 8000, true, "", "Python"}, // the allow rule names python.exe
			{"private", 8006, true, "*", ""},      // the block range wins
			{"domain", 8443, true, "*", ""},
			{"private", 443, false, "*", ""},
			{"private", 3389, true, "", ""}, // Remote Desktop's rule is disabled
			{"private", 25, true, "", ""},   // the block on 25 is outbound
		} {
			d := DecideWindows(byName[tc.profile], rules, tc.port)
			name := ""
			if d.Rule != nil {
				name = "*"
			}
			if d.Block != tc.block || name != tc.rule || !strings.Contains(strings.Join(d.Unchecked, ";"), tc.unchecked) {
				t.Errorf("%s %s:%d: block %v rule %+v unchecked %q", lang, tc.profile, tc.port, d.Block, d.Rule, d.Unchecked)
			}
		}
		if lang == "en" {
			// Public is BlockInboundAlways: even the web rule does not let it in.
			if d := DecideWindows(byName["public"], rules, 443); !d.Block {
				t.Errorf("public 443: %+v", d)
			}
			// Domain has an allow-all rule: 9999 gets in.
			if d := DecideWindows(byName["domain"], rules, 9999); d.Block || d.Rule == nil || d.Rule.Name != "All ports dev" {
				t.Errorf("private 9999: %+v", d)
			}
		} else if d := DecideWindows(byName["public"], rules, 9999); d.Block {
			t.Errorf("de public is off (Status AUS): %+v", d)
		}
	}
}

func FuzzParseSocketfilterfw(f *testing.F) {
	for _, file := range []string{"macos12-socketfilterfw.txt", "macos15-socketfilterfw.txt",
		"macos14-socketfilterfw-off.txt", "lynis41-socketfilterfw.txt", "macos15-socketfilterfw-state2.txt"} {
		f.Add(readTestdata(f, "macos", file))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := ParseSocketfilterfw(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("error not ErrSyntax: %v", err)
			}
			return
		}
		if strings.TrimSpace(string(b)) == "" && (st.Enabled != nil || st.BlockAll != nil || st.Stealth != nil) {
			t.Fatalf("state from no output: %+v", st)
		}
	})
}

func FuzzParsePfctl(f *testing.F) {
	for _, file := range []string{"macos13-pfctl-sr.txt", "macos14-pfctl-sr-custom.txt", "macos15-pfctl-sr-expanded.txt",
		"opnsense2866-pfctl-rules.txt", "pfctl-sr-service-names.txt"} {
		f.Add(readTestdata(f, "macos", file))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		rules, err := ParsePfctl(bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, r := range rules {
			if r.Text == "" || r.Line == 0 {
				t.Fatalf("rule without its text or line: %+v", r)
			}
		}
		d := DecidePF(rules, netip.MustParseAddrPort("198.18.0.5:8000"))
		if d.Rule != nil && d.Block != (d.Rule.Action == "block") {
			t.Fatalf("decision %+v disagrees with its rule", d)
		}
	})
}

func FuzzParseNetsh(f *testing.F) {
	for _, lang := range []string{"en", "de"} {
		f.Add(readTestdata(f, "windows", "win11-"+lang+"-rules.txt"), readTestdata(f, "windows", "win11-"+lang+"-allprofiles.txt"))
	}
	f.Fuzz(func(t *testing.T, rb, pb []byte) {
		rules, err := ParseNetshRules(bytes.NewReader(rb))
		if err != nil {
			return
		}
		profiles, err := ParseNetshProfiles(bytes.NewReader(pb))
		if err != nil {
			return
		}
		for _, p := range profiles {
			d := DecideWindows(p, rules, 8000)
			if d.Rule != nil && d.Block == d.Rule.Allow {
				t.Fatalf("decision %+v disagrees with its rule", d)
			}
		}
	})
}

// Elsewhere than Linux, Read says which firewall is there and how to read
// it, not that iptables is missing.
func TestNotNetfilter(t *testing.T) {
	if err := notNetfilter("linux"); err != nil {
		t.Fatal(err)
	}
	for goos, want := range map[string]string{"darwin": "pfctl -sr", "windows": "netsh advfirewall", "freebsd": "only Linux"} {
		if err := notNetfilter(goos); !errors.Is(err, ErrNotNetfilter) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", goos, err)
		}
	}
}
