package doctor

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/firewall"
	"github.com/reach-tools/reach/probe"
	"github.com/reach-tools/reach/sockets"
)

// recorded reads a recorded tool output from the firewall package's testdata.
func recorded(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "firewall", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const pfEnabled = "No ALTQ support in kernel\nStatus: Enabled for 0 days 00:12:03           Debug: Urgent\n"

// pfDenied is how pfctl fails without root.
var pfDenied = errors.New("pfctl: exit status 1: pfctl: /dev/pf: Permission denied")

// TestForeignFindings feeds recorded pfctl, socketfilterfw and netsh
// outputs through the mapping the doctor uses on macOS and Windows: the
// same causes as netfilter's, confirmed only when the deciding rule is
// certain for the packet, and a firewall that could not be read is said.
func TestForeignFindings(t *testing.T) {
	mac := func(sr string, srErr error, si string, alf string) *ForeignFirewall {
		var srb, alfb []byte
		if sr != "" {
			srb = recorded(t, "macos/"+sr)
		}
		alfErr := errors.New("socketfilterfw: not run")
		if alf != "" {
			alfb, alfErr = recorded(t, "macos/"+alf), nil
		}
		var siErr error
		if si == "" {
			siErr = pfDenied
		}
		return readDarwin(srb, srErr, []byte(si), siErr, alfb, alfErr)
	}
	win := func(lang string) *ForeignFirewall {
		return readWindows(recorded(t, "windows/win11-"+lang+"-allprofiles.txt"), nil,
			recorded(t, "windows/win11-"+lang+"-rules.txt"), nil)
	}
	// Without the domain profile, whose rule allows every port: the
	// private profile's default blocks unless the IPHTTPS rule, whose
	// port is a keyword, allows it; the public profile blocks always.
	noDomain := win("en")
	noDomain.WinProfiles = noDomain.WinProfiles[1:]
	inline := &ForeignFirewall{System: "pf", PFRead: true, PFStatus: "enabled"}
	var err error
	if inline.PF, err = firewall.ParsePfctl(strings.NewReader("block in proto tcp from any to any port = 7000\n")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		ff     *ForeignFirewall
		dst    string
		class  probe.Class
		cause  Cause // "" for no finding
		conf   Confidence
		read   bool
		detail string // in the detail
		quote  string // in the finding's evidence
	}{
		{"pf block return quick, certain", mac("macos15-pfctl-sr-expanded.txt", nil, pfEnabled, ""), "198.18.0.2:1500", probe.Refused,
			FirewallReject, Confirmed, true, "pf blocks tcp to 198.18.0.2:1500 (reject)", "line 5: block return in log quick inet proto tcp"},
		{"pf status unread: likely", mac("macos15-pfctl-sr-expanded.txt", nil, "", ""), "198.18.0.2:1500", probe.Refused,
			FirewallReject, Likely, true, "pf blocks", "pf is enabled (pfctl -si was not read)"},
		{"pf reject does not explain a timeout", mac("macos15-pfctl-sr-expanded.txt", nil, pfEnabled, ""), "198.18.0.2:1500", probe.Timeout,
			"", "", true, "does not fit what the probe saw (timeout)", ""},
		{"pf rule on en0 from elsewhere: not guessed", mac("macos15-pfctl-sr-expanded.txt", nil, pfEnabled, ""), "198.18.0.2:9000", probe.Timeout,
			"", "", true, "pf passes it", ""},
		{"pf pass rule quoted", mac("macos15-pfctl-sr-expanded.txt", nil, pfEnabled, ""), "198.18.0.2:80", probe.Refused,
			"", "", true, "pf passes tcp to 198.18.0.2:80 by pfctl -sr line 7", ""},
		{"pf drop behind tables and interfaces: likely", mac("macos14-pfctl-sr-custom.txt", nil, pfEnabled, ""), "198.18.0.2:5432", probe.Timeout,
			FirewallDrop, Likely, true, "(drop): pfctl -sr line 8", "from table <trusted>"},
		{"pf on loopback: lo0 may be skipped", mac("macos15-pfctl-sr-expanded.txt", nil, pfEnabled, ""), "127.0.0.1:1500", probe.Refused,
			FirewallReject, Likely, true, "pf blocks", "set skip on lo0"},
		{"pf disabled", mac("macos15-pfctl-sr-expanded.txt", nil, "Status: Disabled\n", ""), "198.18.0.2:1500", probe.Refused,
			"", "", true, "pf is disabled (pfctl -si): its 7 rules do not apply", ""},
		{"plain block: block-policy not shown", inline, "198.18.0.2:7000", probe.Timeout,
			FirewallDrop, Likely, true, "(drop)", "set block-policy is drop"},
		{"pfctl needs root", mac("", pfDenied, "", "macos14-socketfilterfw-off.txt"), "198.18.0.2:1500", probe.Timeout,
			"", "", false, "the firewall could not be read: pfctl needs root (sudo reach check …); the Application Firewall is off", ""},
		{"pfctl needs root, block-all answers", mac("", pfDenied, "", "macos15-socketfilterfw.txt"), "198.18.0.2:8000", probe.Refused,
			FirewallReject, Likely, false, "pfctl needs root", "blocks all incoming connections"},
		{"block-all does not filter loopback", mac("", pfDenied, "", "macos15-socketfilterfw.txt"), "127.0.0.1:8000", probe.Refused,
			"", "", false, "does not filter loopback", ""},
		{"application firewall per app", mac("macos13-pfctl-sr.txt", nil, pfEnabled, "macos12-socketfilterfw.txt"), "198.18.0.2:8000", probe.Timeout,
			"", "", true, "decides per application", ""},
		{"windows block rule in every profile", win("en"), "198.18.0.2:8443", probe.Timeout,
			FirewallDrop, Confirmed, true, "blocks tcp to 198.18.0.2:8443 in the domain, private, public profile", `rule "Block dev range"`},
		{"windows default policy, one profile allows", win("en"), "198.18.0.2:9999", probe.Timeout,
			FirewallDrop, Possible, true, `lets it in in the domain (rule "All ports dev" allows it)`, "Firewall Policy BlockInbound,AllowOutbound, and no rule allows tcp port 9999"},
		{"windows blocks in one profile only: possible", win("en"), "198.18.0.2:80", probe.Timeout,
			FirewallDrop, Possible, true, `lets it in in the domain (rule "Open web" allows it)`, "show currentprofile"},
		{"windows default policy, a keyword rule unchecked: likely", noDomain, "198.18.0.2:9999", probe.Timeout,
			FirewallDrop, Likely, true, "in the private, public profile", "IPHTTPS"},
		{"windows drop does not explain a refusal", win("en"), "198.18.0.2:8443", probe.Refused,
			"", "", true, "does not fit what the probe saw: refused", ""},
		{"windows loopback", win("en"), "127.0.0.1:8443", probe.Timeout,
			"", "", true, "does not filter loopback", ""},
		{"windows german", win("de"), "198.18.0.2:9999", probe.Timeout,
			FirewallDrop, Possible, true, "public (off)", "domain profile"},
		{"netsh failed", readWindows(nil, errors.New("netsh: exit status 1: The requested operation requires elevation"), nil, nil),
			"198.18.0.2:80", probe.Timeout, "", "", false, "the firewall could not be read: netsh", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, detail, read := foreignFindings(tt.ff, netip.MustParseAddrPort(tt.dst), tt.class)
			if read != tt.read || !strings.Contains(detail, tt.detail) {
				t.Errorf("read %v, detail %q; want %v and %q", read, detail, tt.read, tt.detail)
			}
			if tt.cause == "" {
				if len(fs) != 0 {
					t.Errorf("findings %+v, want none", fs)
				}
				return
			}
			if len(fs) != 1 || fs[0].Cause != tt.cause || fs[0].Confidence != tt.conf || !strings.Contains(fs[0].Evidence, tt.quote) {
				t.Fatalf("findings %+v; want one %s (%s) quoting %q", fs, tt.cause, tt.conf, tt.quote)
			}
		})
	}
}

// foreignHost is a macOS or Windows host: Read fails as firewall.Commands
// does there, and ReadForeign gives the recorded firewall.
type foreignHost struct {
	fakeHost
	ff *ForeignFirewall
}

func (foreignHost) Read(context.Context) (*firewall.Ruleset, error) {
	return nil, firewall.ErrNotNetfilter
}
func (f foreignHost) ReadForeign(context.Context) (*ForeignFirewall, error) { return f.ff, nil }

// TestForeignLadder runs the ladder on a fake macOS and Windows host: the
// firewall check weighs their firewall, with the causes of Linux, and
// says when it could not be read instead of skipping in silence.
func TestForeignLadder(t *testing.T) {
	self := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8"), netip.MustParsePrefix("198.18.0.2/24")}
	pf := readDarwin(recorded(t, "macos/macos15-pfctl-sr-expanded.txt"), nil, []byte(pfEnabled), nil,
		recorded(t, "macos/macos14-socketfilterfw-off.txt"), nil)
	denied := readDarwin(nil, pfDenied, nil, pfDenied, recorded(t, "macos/macos14-socketfilterfw-off.txt"), nil)
	win := readWindows(recorded(t, "windows/win11-en-allprofiles.txt"), nil, recorded(t, "windows/win11-en-rules.txt"), nil)
	tests := []struct {
		name   string
		ff     *ForeignFirewall
		port   uint16
		class  probe.Class
		cause  Cause
		conf   Confidence
		status Status
		detail string
	}{
		{"pf rejects", pf, 1500, probe.Refused, FirewallReject, Confirmed, Fail, "pfctl -sr line 5"},
		{"pfctl needs root", denied, 1500, probe.Timeout, FirewallDrop, Likely, Skip,
			"the firewall could not be read: pfctl needs root (sudo reach check …)"},
		{"windows drops", win, 8443, probe.Timeout, FirewallDrop, Confirmed, Fail, `rules read, blocks tcp to 198.18.0.2:8443`},
	}
	ladder := []Stage{{DNSCheck}, {TCPCheck, HostCheck}, {SocketsCheck, FirewallCheck}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ls := []sockets.Socket{listener(fmt.Sprintf("0.0.0.0:%d", tt.port), "sleeping", 0, 128)}
			h := foreignHost{fakeHost{addrs: self, socks: ls}, tt.ff}
			opt := Options{Dial: dialClass(tt.class), Sockets: h, Firewall: h, Ladder: ladder, Probes: 1}
			r := Run(context.Background(), endpoint.Endpoint{Host: "198.18.0.2", Port: tt.port}, opt)
			if tt.status == Fail && (r.Cause != tt.cause || r.Confidence != tt.conf) {
				t.Errorf("cause %s (%s), want %s (%s); findings %+v", r.Cause, r.Confidence, tt.cause, tt.conf, r.Findings)
			}
			for _, c := range r.Checks {
				if c.Name == "firewall" && (c.Status != tt.status || !strings.Contains(c.Detail, tt.detail)) {
					t.Errorf("firewall check %s: %q; want %s with %q", c.Status, c.Detail, tt.status, tt.detail)
				}
			}
		})
	}
}

// FuzzForeignFindings: whatever pfctl, socketfilterfw and netsh print,
// reading it and weighing it neither panics nor finds a cause without
// quoting evidence, and a blocked connection is only ever a drop or a
// reject.
func FuzzForeignFindings(f *testing.F) {
	for _, name := range []string{"macos/macos14-pfctl-sr-custom.txt", "macos/macos15-pfctl-sr-expanded.txt",
		"macos/macos15-socketfilterfw.txt", "windows/win11-en-allprofiles.txt", "windows/win11-de-rules.txt"} {
		b := recorded(f, name)
		f.Add(b, []byte(pfEnabled), b, uint16(8443), true)
	}
	f.Fuzz(func(t *testing.T, a, b, c []byte, port uint16, timeout bool) {
		class := probe.Refused
		if timeout {
			class = probe.Timeout
		}
		for _, ff := range []*ForeignFirewall{readDarwin(a, nil, b, nil, c, nil), readWindows(a, nil, c, nil)} {
			for _, dst := range []string{"198.18.0.2", "127.0.0.1", "fd00::2"} {
				fs, detail, _ := foreignFindings(ff, netip.AddrPortFrom(netip.MustParseAddr(dst), port), class)
				if detail == "" {
					t.Errorf("%s: no detail", ff.System)
				}
				for _, fd := range fs {
					if (fd.Cause != FirewallDrop && fd.Cause != FirewallReject) || fd.Evidence == "" || fd.Fix == "" {
						t.Errorf("%s: finding %+v", ff.System, fd)
					}
				}
			}
		}
	})
}

func TestPfStatus(t *testing.T) {
	for in, want := range map[string]string{pfEnabled: "enabled", "Status: Disabled\n": "disabled", "Status: Maybe\n": "", "": ""} {
		if got := pfStatus([]byte(in)); got != want {
			t.Errorf("pfStatus(%q) = %q, want %q", in, got, want)
		}
	}
}
