package fault_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reach-tools/reach/dial"
	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/internal/netlab"
	"github.com/reach-tools/reach/internal/testnet"
)

// Every test here runs reach fault inside namespaces it makes, and probes
// from inside them; the root namespace's tables are never touched.

func buildReach(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "reach")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/reach").CombinedOutput(); err != nil {
		t.Fatalf("building reach: %v\n%s", err, out)
	}
	return bin
}

// reachIn runs reach in h and returns its output and exit status.
func reachIn(t *testing.T, bin string, h *netlab.Host, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.Name(), bin}, args...)...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	case err != nil:
		t.Fatalf("reach %v: %v", args, err)
	}
	return string(out), 0
}

// faultLab is a client and a server with an echo listener, and rules of
// someone else's in the server's nftables and iptables.
type faultLab struct {
	*netlab.Pair
	bin    string
	target netip.AddrPort // the echo listener
	before string         // the server's nft list ruleset before any fault
}

// foreignNft and foreignIpt are rules reach did not write; one even says
// reach-fault in its comment, and one is in reach's own chain's table.
const foreignNft = `table inet keep {
	chain input {
		type filter hook input priority 0; policy accept;
		tcp dport 9 drop comment "not reach's"
		ip saddr 198.19.255.0/24 tcp dport 7 reject with tcp reset comment "reach-fault/1 lookalike"
	}
}
`

func newFaultLab(t *testing.T) *faultLab {
	netlab.Require(t)
	p := netlab.New(t).Pair()
	l := &faultLab{Pair: p, bin: buildReach(t)}
	// Each probe of reach check is answered: no ICMP is rate-limited away.
	p.Server.Sysctl(t, "net.ipv4.icmp_ratelimit", "0")
	ln := p.Server.Listen(t, "tcp", netip.AddrPortFrom(p.ServerAddr, 0).String())
	l.target = testnet.ServeOn(t, ln, testnet.Echo)
	p.Server.Nft(t, foreignNft)
	p.Server.Iptables(t, "-A", "INPUT", "-p", "tcp", "--dport", "9", "-m", "comment", "--comment", "someone's", "-j", "DROP")
	p.Server.Run(t, "ip6tables", "-w", "-A", "INPUT", "-p", "tcp", "--dport", "9", "-j", "DROP")
	p.Server.Iptables(t, "-N", "OTHER")
	p.Server.Iptables(t, "-A", "OTHER", "-s", "198.19.255.0/24", "-j", "RETURN")
	l.before = l.ruleset(t)
	return l
}

func (l *faultLab) ruleset(t *testing.T) string {
	t.Helper()
	return l.Server.Run(t, "nft", "list", "ruleset")
}

// foreign is the ruleset without reach's table and chain, and without
// blank lines: what must not change while a fault is on. iptables-nft
// shows its chains in nft too.
func foreign(ruleset string) string {
	var keep []string
	end := "" // the line that ends the block being skipped
	for _, line := range strings.Split(ruleset, "\n") {
		switch {
		case end != "":
			if line == end {
				end = ""
			}
			continue
		case line == "table inet reach_fault {":
			end = "}"
			continue
		case line == "\tchain REACH-FAULT {":
			end = "\t}"
			continue
		case strings.TrimSpace(line) == "" || strings.Contains(line, "jump REACH-FAULT") ||
			strings.HasPrefix(line, "# Warning: table ip"): // iptables-nft marks a table it made a chain in
			continue
		}
		keep = append(keep, line)
	}
	return strings.Join(keep, "\n")
}

type listed struct {
	ID, Mode, Source, Backend, Leftover string
	Port                                int
	Rules                               int
}

func (l *faultLab) list(t *testing.T) []listed {
	t.Helper()
	out, code := reachIn(t, l.bin, l.Server, "fault", "list", "--json")
	if code != 0 {
		t.Fatalf("reach fault list --json: exit %d:\n%s", code, out)
	}
	var list []listed
	for line := range strings.Lines(out) { // JSON Lines: a fault each
		var f listed
		if err := json.Unmarshal([]byte(line), &f); err != nil {
			t.Fatalf("reach fault list --json: %v:\n%s", err, out)
		}
		list = append(list, f)
	}
	return list
}

// start runs reach fault in the server, and waits until its rule is in.
func (l *faultLab) start(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := l.Server.Start(t, append([]string{l.bin, "fault"}, args...)...)
	if !testnet.Poll(10*time.Second, func() bool { return len(l.list(t)) > 0 }) {
		t.Fatalf("reach fault %v: no fault listed after 10s", args)
	}
	return cmd
}

// wait waits for cmd to exit, at most within, and returns its status.
func wait(t *testing.T, cmd *exec.Cmd, within time.Duration) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(within):
		t.Fatalf("reach fault still runs after %v", within)
		return -1
	}
}

// gone checks that no fault is left and the ruleset is as before, byte for byte.
func (l *faultLab) gone(t *testing.T, when string) {
	t.Helper()
	if list := l.list(t); len(list) != 0 {
		t.Errorf("%s: faults left: %+v", when, list)
	}
	if now := l.ruleset(t); now != l.before {
		t.Errorf("%s: the ruleset changed:\nbefore:\n%s\nnow:\n%s", when, l.before, now)
	}
}

// dialErr is what one connect from the client to the target gives.
func (l *faultLab) dialErr(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := l.Client.DialContext(ctx, "tcp", l.target.String())
	if err == nil {
		c.Close()
	}
	return err
}

// check runs reach check --json in h against target and returns the cause
// and its findings, each as "CAUSE CONFIDENCE".
func (l *faultLab) check(t *testing.T, h *netlab.Host, target netip.AddrPort) (string, []string) {
	t.Helper()
	out, _ := reachIn(t, l.bin, h, "check", "--json", "--timeout", "2s", target.String())
	var r struct {
		Cause    string
		Findings []struct{ Cause, Confidence string }
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("reach check: %v:\n%s", err, out)
	}
	var fs []string
	for _, f := range r.Findings {
		fs = append(fs, f.Cause+" "+f.Confidence)
	}
	return r.Cause, fs
}

// Each mode, with each backend: applied, seen by a client, named by reach
// check from the client and from the server itself, gone after Ctrl-C with
// the rules of others as they were. The fault lasts far longer than the
// checks take on a loaded machine; its expiry is TestFaultDialRidesThrough's.
func TestFaultModes(t *testing.T) {
	l := newFaultLab(t)
	for _, backend := range []string{"nft", "iptables"} {
		for _, tc := range []struct {
			mode       string
			errno      error  // what a connect gets; nil: a timeout
			fromClient string // reach check's cause from the client
			onServer   string // ... on the server, with its rules as evidence
		}{
			{"refuse", syscall.ECONNREFUSED, "not-listening", "firewall-reject"},
			{"drop", nil, "firewall-drop", "firewall-drop"},
			{"reject-icmp", syscall.ECONNREFUSED, "firewall-reject", "firewall-reject"},
		} {
			t.Run(backend+"/"+tc.mode, func(t *testing.T) {
				cmd := l.start(t, tc.mode, "--port", strconv.Itoa(int(l.target.Port())), "--for", "60s", "--backend", backend)
				list := l.list(t)
				if len(list) != 1 || list[0].Mode != tc.mode || list[0].Backend != backend || list[0].Leftover != "" {
					t.Errorf("listed %+v", list)
				}
				if got := foreign(l.ruleset(t)); got != foreign(l.before) {
					t.Errorf("others' rules changed:\nbefore:\n%s\nnow:\n%s", foreign(l.before), got)
				}
				err := l.dialErr(500 * time.Millisecond)
				if tc.errno != nil && !errors.Is(err, tc.errno) {
					t.Errorf("connect: %v; want %v", err, tc.errno)
				}
				if ne, ok := err.(net.Error); tc.errno == nil && (!ok || !ne.Timeout()) {
					t.Errorf("connect: %v; want a timeout", err)
				}
				if got, _ := l.check(t, l.Client, l.target); got != tc.fromClient {
					t.Errorf("reach check from the client: %s; want %s", got, tc.fromClient)
				}
				// On the server its own rules are evidence: the fault's
				// rule names the cause for certain, with either backend.
				cause, findings := l.check(t, l.Server, l.target)
				if cause != tc.onServer || !slices.Contains(findings, tc.onServer+" confirmed") {
					t.Errorf("reach check on the server: %s (findings %v); want %s, confirmed", cause, findings, tc.onServer)
				}
				cmd.Process.Signal(syscall.SIGINT)
				if code := wait(t, cmd, 15*time.Second); code != 0 {
					t.Errorf("exit %d", code)
				}
				l.gone(t, "after Ctrl-C")
				if err := l.dialErr(2 * time.Second); err != nil {
					t.Errorf("after the fault: %v", err)
				}
			})
		}
	}
}

// A client that retries rides through a 2 s refuse or drop window: the
// dial that starts inside it connects once it ends.
func TestFaultDialRidesThrough(t *testing.T) {
	l := newFaultLab(t)
	ep, err := endpoint.ParseEndpoint(l.target.String(), 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"refuse", "drop"} {
		t.Run(mode, func(t *testing.T) {
			cmd := l.start(t, mode, "--port", strconv.Itoa(int(l.target.Port())), "--for", "2s")
			var failed int
			d := dial.New([]endpoint.Endpoint{ep}, dial.Options{
				Dial: l.Client.DialContext, Timeout: 500 * time.Millisecond, Retries: -1,
				Backoff:   dial.Backoff{Initial: 200 * time.Millisecond, Max: 500 * time.Millisecond},
				OnAttempt: func(a dial.Attempt) { failed += map[bool]int{true: 1}[a.Err != nil] },
			})
			defer d.Close()
			ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
			defer cancel()
			c, err := d.DialContext(ctx)
			if err != nil {
				t.Fatalf("dial through a %s window: %v", mode, err)
			}
			c.Close()
			if failed == 0 {
				t.Errorf("no attempt failed: the %s window was not seen", mode)
			}
			wait(t, cmd, 15*time.Second)
			l.gone(t, "after the window")
		})
	}
}

// Ctrl-C (SIGINT) and SIGTERM end a fault at once, with exit status 0.
func TestFaultSignals(t *testing.T) {
	l := newFaultLab(t)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := l.start(t, "drop", "--port", strconv.Itoa(int(l.target.Port())), "--for", "5m")
			cmd.Process.Signal(sig)
			if code := wait(t, cmd, 10*time.Second); code != 0 {
				t.Errorf("exit %d", code)
			}
			l.gone(t, "after "+sig.String())
		})
	}
}

// After kill -9 of reach, its detached remover removes the fault; without
// the remover, the next reach fault run does.
func TestFaultKilled(t *testing.T) {
	l := newFaultLab(t)
	port := strconv.Itoa(int(l.target.Port()))
	t.Run("remover", func(t *testing.T) {
		cmd := l.start(t, "refuse", "--port", port, "--for", "5m")
		cmd.Process.Kill()
		cmd.Wait()
		if !testnet.Poll(5*time.Second, func() bool { return l.ruleset(t) == l.before }) {
			t.Errorf("the remover left the fault 5s after its owner was killed:\n%s", l.ruleset(t))
		}
	})
	t.Run("next run", func(t *testing.T) {
		cmd := l.start(t, "refuse", "--port", port, "--for", "5m", "--no-remover")
		cmd.Process.Kill()
		cmd.Wait()
		// Nothing removes it by itself (reading nft does not sweep)...
		time.Sleep(time.Second)
		if !strings.Contains(l.ruleset(t), "refuse port="+port) {
			t.Fatalf("the killed run's fault went without a next run:\n%s", l.ruleset(t))
		}
		// ... the next run does, before applying its own.
		next := l.Server.Start(t, l.bin, "fault", "drop", "--port", "9", "--for", "2s", "--no-remover")
		if !testnet.Poll(10*time.Second, func() bool { return strings.Contains(l.ruleset(t), "drop port=9") }) {
			t.Fatal("the next run applied no fault")
		}
		if strings.Contains(l.ruleset(t), "refuse port="+port) {
			t.Errorf("the next run left the killed run's fault:\n%s", l.ruleset(t))
		}
		wait(t, next, 15*time.Second)
		l.gone(t, "after the next run")
	})
	t.Run("clear", func(t *testing.T) {
		cmd := l.start(t, "reject-icmp", "--port", port, "--for", "5m", "--no-remover", "--backend", "iptables")
		cmd.Process.Kill()
		cmd.Wait()
		out, code := reachIn(t, l.bin, l.Server, "fault", "clear")
		if code != 0 || !strings.Contains(out, "removed fault") {
			t.Errorf("reach fault clear: exit %d\n%s", code, out)
		}
		l.gone(t, "after clear")
	})
}

// --source limits a fault to its clients; --probability hits that share
// of SYNs (at 0.5, 40 connects all alike would happen once in 2^39).
func TestFaultSourceAndProbability(t *testing.T) {
	l := newFaultLab(t)
	port := strconv.Itoa(int(l.target.Port()))
	for _, backend := range []string{"nft", "iptables"} {
		t.Run(backend, func(t *testing.T) {
			other := netip.PrefixFrom(l.ServerAddr, 32).String() // the server itself, not the client
			cmd := l.start(t, "refuse", "--port", port, "--for", "30s", "--source", other, "--backend", backend)
			if err := l.dialErr(2 * time.Second); err != nil {
				t.Errorf("a client outside --source %s: %v", other, err)
			}
			if list := l.list(t); len(list) != 1 || list[0].Source != other {
				t.Errorf("listed %+v; want source %s", list, other)
			}
			cmd.Process.Signal(syscall.SIGINT)
			wait(t, cmd, 10*time.Second)

			mine := netip.PrefixFrom(l.ClientAddr, 24).Masked().String()
			cmd = l.start(t, "refuse", "--port", port, "--for", "30s", "--source", mine,
				"--probability", "0.5", "--backend", backend)
			var refused, open int
			for range 40 {
				switch err := l.dialErr(2 * time.Second); {
				case err == nil:
					open++
				case errors.Is(err, syscall.ECONNREFUSED):
					refused++
				default:
					t.Fatalf("connect: %v", err)
				}
			}
			if refused == 0 || open == 0 {
				t.Errorf("at probability 0.5: %d refused, %d open of 40", refused, open)
			}
			cmd.Process.Signal(syscall.SIGINT)
			wait(t, cmd, 10*time.Second)
			l.gone(t, "after SIGINT")
		})
	}
}

// Over IPv6, nft's icmpx rejects with ICMPv6 port-unreachable, and the
// doctor names it as it does over IPv4.
func TestFaultIPv6(t *testing.T) {
	netlab.Require(t)
	p := netlab.New(t).PairV6()
	l := &faultLab{Pair: p, bin: buildReach(t)}
	p.Server.Sysctl(t, "net.ipv6.icmp.ratelimit", "0")
	ln := p.Server.Listen(t, "tcp", netip.AddrPortFrom(p.ServerAddr, 0).String())
	l.target = testnet.ServeOn(t, ln, testnet.Echo)
	l.before = l.ruleset(t)
	port := strconv.Itoa(int(l.target.Port()))
	for _, tc := range []struct{ mode, cause string }{
		{"refuse", "not-listening"},
		{"reject-icmp", "firewall-reject"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			cmd := l.start(t, tc.mode, "--port", port, "--for", "30s", "--source", netip.PrefixFrom(p.ClientAddr, 64).Masked().String())
			if err := l.dialErr(2 * time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("connect: %v; want refused", err)
			}
			if got, _ := l.check(t, l.Client, l.target); got != tc.cause {
				t.Errorf("reach check from the client: %s; want %s", got, tc.cause)
			}
			cmd.Process.Signal(syscall.SIGINT)
			wait(t, cmd, 10*time.Second)
			l.gone(t, "after SIGINT")
		})
	}
}
