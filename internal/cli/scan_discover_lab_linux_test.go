package cli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reach-tools/reach/internal/netlab"
	"github.com/reach-tools/reach/internal/testnet"
	"github.com/reach-tools/reach/scan"
)

// scanLines is what reach scan --json printed: each host line as
// "state/reason/judged_by", each port line as "addr:port" -> "state/reason",
// and the summary.
type scanLines struct {
	hosts   map[netip.Addr]string
	ports   map[string]string
	summary map[string]any
}

func parseScanJSON(t *testing.T, out string) scanLines {
	t.Helper()
	l := scanLines{hosts: map[netip.Addr]string{}, ports: map[string]string{}}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("not JSON: %q: %v", sc.Text(), err)
		}
		switch line["type"] {
		case "host":
			var h scan.Host
			if err := json.Unmarshal(sc.Bytes(), &h); err != nil {
				t.Fatalf("host line %q: %v", sc.Text(), err)
			}
			if _, dup := l.hosts[h.Addr]; dup {
				t.Fatalf("host %v printed twice:\n%s", h.Addr, out)
			}
			l.hosts[h.Addr] = fmt.Sprintf("%s/%s/%s", h.State, h.Reason, h.JudgedBy)
		case "port":
			var p scan.Port
			if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
				t.Fatalf("port line %q: %v", sc.Text(), err)
			}
			l.ports[netip.AddrPortFrom(p.Addr, p.Port).String()] = fmt.Sprintf("%s/%s", p.State, p.Reason)
		case "summary":
			l.summary = line
		}
	}
	if l.summary == nil {
		t.Fatalf("no summary line:\n%s", out)
	}
	return l
}

// Issue 18's proof, by the command: on an IPv4 and an IPv6 LAN, a dead
// address, a live host with every port closed, one that drops everything
// but ARP/ND, and one that answers 300 ms late are each judged exactly, with
// the reason and the method, in reach scan --json, --hosts-only, the text
// summary, and --skip-discovery (which reports what reach said before
// discovery existed).
func TestScanDiscoveryInNamespace(t *testing.T) {
	bin := buildReach(t)
	// The unprivileged runs execute it too: open its directory (and the
	// test's temporary directory above it) to every user.
	for _, dir := range []string{filepath.Dir(bin), filepath.Dir(filepath.Dir(bin))} {
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, v6 := range []bool{false, true} {
		t.Run(map[bool]string{false: "ipv4", true: "ipv6"}[v6], func(t *testing.T) {
			lab := netlab.New(t)
			sc, cl, fw, lt := lab.Host("scanner"), lab.Host("closed"), lab.Host("firewalled"), lab.Host("late")
			addrs := lab.LANWith(netlab.LANOptions{IPv6: v6, Delay: map[*netlab.Host]time.Duration{lt: 300 * time.Millisecond}}, sc, cl, fw, lt)
			dead, closed, firewalled, late := lab.Unowned(t, addrs[0]), addrs[1], addrs[2], addrs[3]
			by, up := "arp", "arp-response"
			if v6 {
				by, up = "nd", "nd-response"
				fw.ApplyRules(t, netlab.IP6Tables, "*filter\n:INPUT DROP [0:0]\n:OUTPUT DROP [0:0]\n"+
					"-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 135 -j ACCEPT\n-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 136 -j ACCEPT\n"+
					"-A OUTPUT -p ipv6-icmp -m icmp6 --icmpv6-type 135 -j ACCEPT\n-A OUTPUT -p ipv6-icmp -m icmp6 --icmpv6-type 136 -j ACCEPT\nCOMMIT\n")
			} else {
				fw.ApplyRules(t, netlab.IPTables, "*filter\n:INPUT DROP [0:0]\n:OUTPUT DROP [0:0]\nCOMMIT\n")
			}
			open := testnet.AddrPort(lt.Listen(t, "tcp", net.JoinHostPort(late.String(), "0"))).Port()
			shut := testnet.Closed(lt.Listen(t, "tcp", net.JoinHostPort(late.String(), "0"))).Port()
			ports := []uint16{open, shut}
			portList := strconv.Itoa(int(open)) + "," + strconv.Itoa(int(shut))
			targets := []string{dead.String(), closed.String(), firewalled.String(), late.String()}

			// wantPorts: every port line of the live hosts, with or without
			// discovery.
			wantPorts := map[string]string{}
			for _, p := range ports {
				wantPorts[netip.AddrPortFrom(closed, p).String()] = "closed/conn-refused"
				wantPorts[netip.AddrPortFrom(firewalled, p).String()] = "filtered/no-response"
			}
			wantPorts[netip.AddrPortFrom(late, open).String()] = "open/syn-ack"
			wantPorts[netip.AddrPortFrom(late, shut).String()] = "closed/conn-refused"
			judged := map[netip.Addr]string{
				dead:       "host-unreachable/no-response/" + by,
				closed:     "up/" + up + "/" + by,
				firewalled: "up/" + up + "/" + by,
				late:       "up/" + up + "/" + by,
			}
			// run runs reach scan TARGETS ARGS in the scanner's namespace, as
			// root or, with unprivileged, as uid/gid 65534 without
			// capabilities.
			run := func(t *testing.T, unprivileged bool, args ...string) string {
				t.Helper()
				sc.Run(t, "ip", "neigh", "flush", "all") // each run finds the LAN anew
				cmd := append(append([]string{"scan"}, targets...), args...)
				exe := bin
				if unprivileged {
					exe, cmd = "setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", bin}, cmd...)
				}
				out, errs, code := reachIn(t, exe, sc, "", cmd...)
				if code != 0 {
					t.Fatalf("reach scan %s: exit %d: %s\n%s", strings.Join(args, " "), code, errs, out)
				}
				return out
			}
			checkSummary := func(t *testing.T, s map[string]any, discovery, hostsOnly bool) {
				t.Helper()
				if s["hosts"] != 4.0 || s["hosts_up"] != 3.0 || s["discovery"] != discovery || s["hosts_only"] != hostsOnly {
					t.Errorf("summary %v: want 4 hosts, 3 up, discovery %v, hosts_only %v", s, discovery, hostsOnly)
				}
			}

			t.Run("json", func(t *testing.T) {
				l := parseScanJSON(t, run(t, false, "-p", portList, "--json", "--all-states"))
				if !maps.Equal(l.hosts, judged) || !maps.Equal(l.ports, wantPorts) {
					t.Fatalf("hosts %v\nwant %v\nports %v\nwant %v", l.hosts, judged, l.ports, wantPorts)
				}
				checkSummary(t, l.summary, true, false)
				wantBy, wantReasons := map[string]any{by: 4.0}, map[string]any{up: 3.0, "no-response": 1.0}
				if !maps.Equal(l.summary["judged_by"].(map[string]any), wantBy) || !maps.Equal(l.summary["reasons"].(map[string]any), wantReasons) {
					t.Errorf("summary judged_by %v reasons %v; want %v and %v", l.summary["judged_by"], l.summary["reasons"], wantBy, wantReasons)
				}
			})

			t.Run("hosts only", func(t *testing.T) {
				l := parseScanJSON(t, run(t, false, "--hosts-only", "--json"))
				if !maps.Equal(l.hosts, judged) || len(l.ports) != 0 {
					t.Fatalf("hosts %v\nwant %v\nand no ports, got %v", l.hosts, judged, l.ports)
				}
				checkSummary(t, l.summary, true, true)
			})

			t.Run("text", func(t *testing.T) {
				out := run(t, false, "-p", portList)
				for _, want := range []string{
					"reach scan report for " + firewalled.String(),
					"Host is up, " + up + " (" + by + ")",
					"Hosts judged: 3 up by " + up + " (" + by + "), 1 host-unreachable by no-response (" + by + ")",
				} {
					if !strings.Contains(out, want) {
						t.Fatalf("output lacks %q:\n%s", want, out)
					}
				}
			})

			// Without privilege reach cannot send ARP/ND itself: it pings
			// (the ICMP echo socket where net.ipv4.ping_group_range lets
			// it, and TCP pings) and reads what the kernel's own neighbour
			// requests found. The all-closed host answers every ping at
			// once (the echo, and the TCP ping with a reset), so whichever
			// is read first judges it; the firewalled one answers only the
			// kernel's ARP/ND; the late one's replies come 600 ms after a
			// request (its neighbour answer and then its reply are each
			// 300 ms late), so it is judged by the neighbour table unless
			// the machine is slow enough for a reply to come first. Every
			// one of these is true evidence.
			for _, c := range []struct {
				name, groups string
				pings        []string // what the all-closed host may be judged by
			}{
				// Every group may ping, as systemd's defaults set it on most
				// distributions.
				{"unprivileged", "0 2147483647", []string{"up/echo-reply/echo", "up/reset/tcp"}},
				// A new namespace's default: nobody may; TCP pings only.
				{"unprivileged without ping sockets", "1 0", []string{"up/reset/tcp"}},
			} {
				t.Run(c.name, func(t *testing.T) {
					sc.Sysctl(t, "net.ipv4.ping_group_range", c.groups)
					for _, args := range [][]string{{"-p", portList, "--json", "--all-states"}, {"--hosts-only", "--json"}} {
						l := parseScanJSON(t, run(t, true, args...))
						if slices.Contains(c.pings, l.hosts[closed]) {
							l.hosts[closed] = "pinged"
						}
						if slices.Contains(c.pings, l.hosts[late]) {
							l.hosts[late] = judged[late]
						}
						want := maps.Clone(judged)
						want[closed] = "pinged"
						wantP := wantPorts
						if args[0] == "--hosts-only" {
							wantP = map[string]string{}
						}
						if !maps.Equal(l.hosts, want) || !maps.Equal(l.ports, wantP) {
							t.Errorf("%s:\nhosts %v\nwant  %v (pinged: one of %q)\nports %v\nwant  %v",
								strings.Join(args, " "), l.hosts, want, c.pings, l.ports, wantP)
						}
					}
				})
			}

			t.Run("skip discovery", func(t *testing.T) {
				l := parseScanJSON(t, run(t, false, "-p", portList, "--json", "--all-states", "--skip-discovery"))
				before := map[netip.Addr]string{
					dead:       "host-unreachable/host-unreach/ports",
					closed:     "up/conn-refused/ports",
					firewalled: "no-answer/no-response/ports",
					late:       "up/syn-ack/ports",
				}
				if !maps.Equal(l.hosts, before) || !maps.Equal(l.ports, wantPorts) {
					t.Fatalf("hosts %v\nwant %v\nports %v\nwant %v", l.hosts, before, l.ports, wantPorts)
				}
				if l.summary["discovery"] != false || l.summary["hosts_up"] != 2.0 {
					t.Errorf("summary %v: want discovery false, 2 up", l.summary)
				}
			})
		})
	}
}
