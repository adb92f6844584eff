package doctor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"time"

	"github.com/reach-tools/reach/sockets"
)

// hostSockets reads this host's sockets with the sockets package.
type hostSockets struct{}

func (hostSockets) Listening(ctx context.Context, keep func(uint16) bool) ([]sockets.Socket, error) {
	t, err := sockets.List(ctx, sockets.Options{Ports: keep})
	return t.Sockets, err
}
func (hostSockets) Addresses() ([]netip.Prefix, error) { return sockets.Addresses() }

// CommandFirewall reads rules with `nft -j list ruleset` (quoting them as
// `nft -a list ruleset` prints them) and iptables-save / ip6tables-save.
// When iptables runs on nf_tables its tables appear in both; they are read
// from iptables-save only, in iptables syntax.
type CommandFirewall struct{}

// cmdTimeout bounds each firewall command.
const cmdTimeout = 2 * time.Second

func runCmd(ctx context.Context, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		if msg := strings.TrimSpace(errb.String()); msg != "" {
			return nil, fmt.Errorf("%s: %w: %s", name, err, firstLine(msg))
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out.Bytes(), nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// iptablesTables are the tables iptables-nft makes in nftables.
var iptablesTables = map[string]bool{"filter": true, "nat": true, "mangle": true, "raw": true, "security": true}

// Rules implements FirewallSource.
func (CommandFirewall) Rules(ctx context.Context) ([]Rule, []string, error) {
	var rules []Rule
	var notes []string
	nfIptables := false
	read := 0
	for _, v := range []struct{ cmd, family string }{{"iptables-save", "ip"}, {"ip6tables-save", "ip6"}} {
		if _, err := exec.LookPath(v.cmd); err != nil {
			notes = append(notes, v.cmd+" is not installed")
			continue
		}
		out, err := runCmd(ctx, v.cmd)
		if err != nil {
			notes = append(notes, fmt.Sprintf("could not read iptables rules: %v", err))
			continue
		}
		rs, err := ParseIptablesSave(string(out), v.family)
		if err != nil {
			notes = append(notes, err.Error())
			continue
		}
		read++
		nfIptables = nfIptables || bytes.Contains(out, []byte("(nf_tables)"))
		rules = append(rules, rs...)
	}
	if _, err := exec.LookPath("nft"); err != nil {
		notes = append(notes, "nft is not installed")
	} else if js, err := runCmd(ctx, "nft", "-j", "list", "ruleset"); err != nil {
		notes = append(notes, fmt.Sprintf("could not read nftables rules: %v", err))
	} else {
		var texts map[string]string
		if txt, err := runCmd(ctx, "nft", "-a", "list", "ruleset"); err == nil {
			texts = ParseNftText(string(txt))
		}
		rs, err := ParseNftJSON(js, texts)
		if err != nil {
			notes = append(notes, err.Error())
		} else {
			read++
			for _, r := range rs {
				fam, name, _ := strings.Cut(r.Table, " ")
				if nfIptables && (fam == "ip" || fam == "ip6") && iptablesTables[name] {
					continue // shown by iptables-save
				}
				rules = append(rules, r)
			}
		}
	}
	if read == 0 {
		if denied(notes) {
			return nil, nil, errors.New("reading them needs root (CAP_NET_ADMIN): nft and iptables-save were refused")
		}
		return nil, notes, errors.New(strings.Join(notes, "; "))
	}
	return rules, notes, nil
}

func (o *Options) socketSource() SocketSource {
	if o.Sockets != nil {
		return o.Sockets
	}
	return hostSockets{}
}

func (o *Options) firewallSource() FirewallSource {
	if o.Firewall != nil {
		return o.Firewall
	}
	return CommandFirewall{}
}

// Gather collects this host's evidence: addresses, every listening socket
// and firewall rules. An agent on a target host answers RemoteEvidence with it.
func Gather(ctx context.Context, src SocketSource, fw FirewallSource) HostEvidence {
	return gather(ctx, src, fw, nil)
}

// nearPort keeps port and the ports that look like a slip of it.
func nearPort(port uint16) func(uint16) bool {
	return func(p uint16) bool { return p == port || similarPort(p, port) }
}

// gather is Gather for the listening sockets whose port keep accepts.
func gather(ctx context.Context, src SocketSource, fw FirewallSource, keep func(uint16) bool) HostEvidence {
	if src == nil {
		src = hostSockets{}
	}
	if fw == nil {
		fw = CommandFirewall{}
	}
	ev := HostEvidence{Host: "this host"}
	var err error
	if ev.Addresses, err = src.Addresses(); err != nil {
		ev.Notes = append(ev.Notes, fmt.Sprintf("addresses: %v", err))
	}
	// Listening stays nil only when the sockets could not be listed.
	if ls, err := src.Listening(ctx, keep); err != nil {
		ev.Notes = append(ev.Notes, fmt.Sprintf("sockets: %v", err))
	} else {
		ev.Listening = append([]sockets.Socket{}, ls...)
	}
	rules, notes, err := fw.Rules(ctx)
	if err != nil {
		ev.Notes = append(ev.Notes, fmt.Sprintf("firewall rules: %v", err))
	} else {
		ev.Rules, ev.Firewall = rules, true
		ev.Notes = append(ev.Notes, notes...)
	}
	return ev
}

// isLocal reports whether addr is one of ev's own addresses.
func (ev *HostEvidence) isLocal(addr netip.Addr) bool {
	addr = addr.Unmap()
	return addr.IsLoopback() || addr.IsUnspecified() || ev.has(addr)
}

// HostCheck gathers the target host's evidence (sockets, firewall) for each
// address: from this host when the address is one of its own, else from
// Options.Remote, asked about every other address at once.
var HostCheck = CheckFunc{"host", func(ctx context.Context, s *State) CheckResult {
	if r, ok := needAddrs(s); !ok {
		return r
	}
	var ev HostEvidence
	s.Options.enter(func() error {
		ev = gather(ctx, s.Options.socketSource(), s.Options.firewallSource(), nearPort(s.Target.Port))
		return nil
	})
	s.Client = &ev
	n := len(s.Addrs)
	s.Local, s.Hosts, s.Agents = make([]bool, n), make([]*HostEvidence, n), make([]*AgentError, n)
	var local, remote []string
	var others []int
	for i, a := range s.Addrs {
		if s.Local[i] = ev.isLocal(a); s.Local[i] {
			s.Hosts[i] = &ev
			local = append(local, a.String())
		} else {
			others = append(others, i)
			remote = append(remote, a.String())
		}
	}
	seen := fmt.Sprintf("%s on port %d or look-alike ports", count(len(ev.Listening), "listening socket"), s.Target.Port)
	if ev.Firewall {
		seen += ", " + count(len(ev.Rules), "firewall rule")
	} else {
		seen += ", no firewall rules (see firewall)"
	}
	res := CheckResult{Status: Info}
	var parts []string
	if len(local) > 0 {
		parts = append(parts, fmt.Sprintf("%s is this host: looked at its %s", strings.Join(local, ", "), seen))
	}
	switch {
	case len(others) == 0:
	case s.Options.Remote == nil:
		parts = append(parts, fmt.Sprintf("%s %s another host: its sockets and firewall cannot be seen from here (run reach check there, or ask its agent: --agent or --hub)", strings.Join(remote, ", "), map[bool]string{true: "is", false: "are"}[len(remote) == 1]))
		if len(local) == 0 {
			res.Status = Skip
			parts = append(parts, "looked at this host's "+seen)
		}
	default:
		askAgents(ctx, s, others)
		answered := len(local) > 0
		for _, i := range others {
			if h := s.Hosts[i]; h != nil {
				answered = true
				parts = append(parts, fmt.Sprintf("%s answered for %s: %s, %s", h.Host, s.Addrs[i], count(len(h.Listening), "listening socket"), count(len(h.Rules), "firewall rule")))
				continue
			}
			ae := s.Agents[i]
			if ae.Failure != AgentNone {
				res.Status = Error
			}
			parts = append(parts, fmt.Sprintf("no evidence for %s: %v", s.Addrs[i], ae))
		}
		if !answered && res.Status != Error {
			res.Status = Skip
		}
	}
	res.Detail = strings.Join(parts, "; ")
	return res
}}

// denied reports whether every tool that ran was refused for lack of privilege.
func denied(notes []string) bool {
	ran := false
	for _, n := range notes {
		if strings.HasSuffix(n, "is not installed") {
			continue
		}
		ran = true
		if !strings.Contains(n, "ermission denied") && !strings.Contains(n, "not permitted") && !strings.Contains(n, "must be root") {
			return false
		}
	}
	return ran
}

// count says "1 thing" or "n things".
func count(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}
