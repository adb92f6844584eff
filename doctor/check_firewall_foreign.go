package doctor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/reach-tools/reach/firewall"
	"github.com/reach-tools/reach/probe"
)

// This file weighs the firewalls that are not netfilter: macOS's pf and
// Application Firewall, and the Windows Firewall. Reading them runs the
// system's tools (readForeign, one file per system); what their output
// says about a connection is decided here, untagged, so it is tested on
// Linux with recorded outputs. The causes and confidence rules are
// netfilter's: confirmed only when the deciding rule is certain for this
// packet, likely when the decision hangs on what the tools do not show.

// ForeignFirewall is what the tools of a system whose firewall is not
// netfilter said. Nil fields were not read; Unread says why.
type ForeignFirewall struct {
	System string // "pf" (macOS) or "windows"

	// macOS: pfctl -sr's rules, pf's status (pfctl -si; "" when not
	// read) and the Application Firewall's state.
	PF       []firewall.PFRule
	PFRead   bool
	PFStatus string // "enabled", "disabled" or ""
	App      *firewall.AppFirewall

	// Windows: netsh advfirewall's profiles and rules.
	WinProfiles []firewall.WinProfile
	WinRules    []firewall.WinRule

	// Unread says what could not be read, and what to do.
	Unread []string
}

// ForeignSource is a FirewallSource that, where Read fails with
// firewall.ErrNotNetfilter, reads the system's own firewall instead.
type ForeignSource interface {
	ReadForeign(ctx context.Context) (*ForeignFirewall, error)
}

// hostFirewall is this host's firewall: netfilter through
// firewall.Commands, or the system's own through readForeign.
type hostFirewall struct{ firewall.Commands }

func (hostFirewall) ReadForeign(ctx context.Context) (*ForeignFirewall, error) {
	return readForeign(ctx)
}

// deniedErr reports whether a tool failed for lack of privilege.
func deniedErr(err error) bool {
	if err == nil {
		return false
	}
	m := err.Error()
	return strings.Contains(m, "ermission denied") || strings.Contains(m, "not permitted") ||
		strings.Contains(m, "must be root")
}

// readDarwin makes the evidence from the outputs (or failures) of
// pfctl -sr, pfctl -si and socketfilterfw.
func readDarwin(sr []byte, srErr error, si []byte, siErr error, alf []byte, alfErr error) *ForeignFirewall {
	ff := &ForeignFirewall{System: "pf"}
	switch {
	case deniedErr(srErr):
		ff.Unread = append(ff.Unread, "the firewall could not be read: pfctl needs root (sudo reach check …)")
	case srErr != nil:
		ff.Unread = append(ff.Unread, fmt.Sprintf("the firewall could not be read: %v", srErr))
	default:
		rules, err := firewall.ParsePfctl(bytes.NewReader(sr))
		if err != nil {
			ff.Unread = append(ff.Unread, fmt.Sprintf("the firewall could not be read: %v", err))
		} else {
			ff.PF, ff.PFRead = rules, true
		}
	}
	if siErr == nil {
		ff.PFStatus = pfStatus(si)
	}
	if alfErr != nil {
		ff.Unread = append(ff.Unread, fmt.Sprintf("the Application Firewall could not be read: %v", alfErr))
	} else if st, err := firewall.ParseSocketfilterfw(bytes.NewReader(alf)); err != nil {
		ff.Unread = append(ff.Unread, fmt.Sprintf("the Application Firewall could not be read: %v", err))
	} else {
		ff.App = &st
	}
	return ff
}

// pfStatus reads "Status: Enabled for ..." or "Status: Disabled" from
// pfctl -si; "" when neither is there.
func pfStatus(si []byte) string {
	for _, l := range strings.Split(string(si), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == "Status:" {
			switch f[1] {
			case "Enabled":
				return "enabled"
			case "Disabled":
				return "disabled"
			}
		}
	}
	return ""
}

// readWindows makes the evidence from the outputs (or failures) of
// netsh advfirewall show allprofiles and firewall show rule name=all
// verbose.
func readWindows(profiles []byte, profErr error, rules []byte, rulesErr error) *ForeignFirewall {
	ff := &ForeignFirewall{System: "windows"}
	if profErr == nil {
		ff.WinProfiles, profErr = firewall.ParseNetshProfiles(bytes.NewReader(profiles))
	}
	if rulesErr == nil {
		ff.WinRules, rulesErr = firewall.ParseNetshRules(bytes.NewReader(rules))
	}
	if err := errors.Join(profErr, rulesErr); err != nil {
		ff.WinProfiles, ff.WinRules = nil, nil
		ff.Unread = append(ff.Unread, fmt.Sprintf("the firewall could not be read: %v", err))
	}
	return ff
}

// checkForeign is the firewall check on a host whose firewall is not
// netfilter: its own rules decide for a target on this host; the rules of
// another host read by its agent are weighed as on Linux.
func checkForeign(s *State) CheckResult {
	ff := s.Client.foreign
	res := CheckResult{Status: Pass}
	var parts []string
	read := false
	for i := range s.Addrs {
		ap := s.addrPort(i)
		class := s.Primary(i)
		h := s.host(i)
		if h != s.Client {
			d := fmt.Sprintf("tcp to %s leaves this host: %s rules for outgoing packets are not weighed", ap, ff.name())
			if h != nil && h.Firewall {
				for _, m := range firewall.Evaluate(h.Rules, firewall.Packet{Direction: "in", Dst: ap}) {
					if f, ok := firewallFinding(m, "in", ap, class, h.Host); ok {
						f.Addr = s.label(i)
						res.Findings = append(res.Findings, f)
					}
				}
				read = true
				d += "; " + h.Host + " sent its own rules"
			} else {
				d += "; the target's firewall cannot be seen from here"
			}
			parts = append(parts, d)
			continue
		}
		fs, d, ok := foreignFindings(ff, ap, class)
		for _, f := range fs {
			f.Addr = s.label(i)
			res.Findings = append(res.Findings, f)
		}
		read = read || ok
		parts = append(parts, d)
	}
	res.Detail = strings.Join(parts, "; ")
	switch {
	case len(res.Findings) > 0:
		res.Status = Fail
	case !read:
		res.Status = Skip
	}
	return res
}

func (ff *ForeignFirewall) name() string {
	if ff.System == "windows" {
		return "the Windows Firewall's"
	}
	return "pf's"
}

// foreignFindings weighs this host's firewall for an incoming tcp
// connection to ap that the probe saw end as class. It returns the
// findings, what was seen, and whether the firewall could be read.
func foreignFindings(ff *ForeignFirewall, ap netip.AddrPort, class probe.Class) ([]Finding, string, bool) {
	if ff.System == "windows" {
		return windowsFindings(ff, ap, class)
	}
	return pfFindings(ff, ap, class)
}

// pfFindings weighs pf and the Application Firewall.
func pfFindings(ff *ForeignFirewall, ap netip.AddrPort, class probe.Class) ([]Finding, string, bool) {
	var out []Finding
	parts := append([]string{}, ff.Unread...)
	loop := ap.Addr().Unmap().IsLoopback()
	if ff.PFRead {
		if f, d := pfFinding(ff, ap, class, loop); d != "" {
			parts = append(parts, d)
			if f.Cause != "" {
				out = append(out, f)
			}
		}
	}
	if ff.App != nil {
		f, d := appFinding(*ff.App, ap, class, loop)
		parts = append(parts, d)
		if f.Cause != "" {
			out = append(out, f)
		}
	}
	return out, strings.Join(parts, "; "), ff.PFRead
}

func pfFinding(ff *ForeignFirewall, ap netip.AddrPort, class probe.Class, loop bool) (Finding, string) {
	if ff.PFStatus == "disabled" {
		return Finding{}, fmt.Sprintf("pf is disabled (pfctl -si): its %d rules do not apply", len(ff.PF))
	}
	d := firewall.DecidePF(ff.PF, ap)
	unchecked := append([]string{}, d.Unchecked...)
	if !d.Block {
		if d.Rule == nil {
			return Finding{}, fmt.Sprintf("no pf rule of %d takes tcp to %s: pf passes it", len(ff.PF), ap)
		}
		return Finding{}, fmt.Sprintf("pf passes tcp to %s by pfctl -sr line %d: %s", ap, d.Rule.Line, d.Rule.Text)
	}
	r := d.Rule
	verdict := "drop"
	switch {
	case r.Return:
		verdict = "reject"
	case !strings.HasPrefix(r.Text, "block drop"):
		unchecked = append(unchecked, "set block-policy is drop (pf's default; return answers with a reset)")
	}
	if ff.PFStatus == "" {
		unchecked = append(unchecked, "pf is enabled (pfctl -si was not read)")
	}
	if loop {
		unchecked = append(unchecked, "lo0 is not skipped (set skip on lo0 is not shown by pfctl -sr)")
	}
	quote := fmt.Sprintf("pfctl -sr line %d: %s", r.Line, r.Text)
	detail := fmt.Sprintf("pf blocks tcp to %s (%s)", ap, verdict) + ": " + quote
	conf := Confirmed
	if len(unchecked) > 0 {
		conf = Likely
		quote += " (unless not: " + strings.Join(unchecked, "; ") + ")"
	}
	fix := fmt.Sprintf("allow tcp port %d on this host: narrow or remove that rule in /etc/pf.conf (or its anchor), "+
		"or add pass in quick proto tcp to any port %d before it, then sudo pfctl -f /etc/pf.conf", ap.Port(), ap.Port())
	switch {
	case verdict == "drop" && class == probe.Timeout:
		return Finding{Cause: FirewallDrop, Confidence: conf, Issue: "pf drops the connection on this host",
			Evidence: quote, Fix: fix}, detail
	case verdict == "reject" && (class == probe.Refused || class == probe.HostUnreachable):
		return Finding{Cause: FirewallReject, Confidence: conf, Issue: "pf rejects the connection on this host",
			Evidence: quote + " (block return answers with a reset)", Fix: fix}, detail
	}
	return Finding{}, detail + fmt.Sprintf(", which does not fit what the probe saw (%s)", class)
}

// appFinding weighs the Application Firewall, which decides per
// application and does not filter loopback: only its block-all setting
// names a cause, and even then signed system services it lets through.
func appFinding(st firewall.AppFirewall, ap netip.AddrPort, class probe.Class, loop bool) (Finding, string) {
	on := func(b *bool) bool { return b != nil && *b }
	switch {
	case !on(st.Enabled):
		return Finding{}, "the Application Firewall is off (socketfilterfw)"
	case loop:
		return Finding{}, "the Application Firewall is on; it does not filter loopback"
	case !on(st.BlockAll):
		return Finding{}, "the Application Firewall is on and decides per application " +
			"(socketfilterfw --listapps), which is not weighed here"
	}
	quote := "socketfilterfw: the Application Firewall is on and blocks all incoming connections"
	if on(st.Stealth) {
		quote += ", in stealth mode (no answer)"
	}
	fix := "turn block-all off (sudo /usr/libexec/ApplicationFirewall/socketfilterfw --setblockall off) " +
		"and allow the server's program (--add PATH --unblockapp PATH)"
	switch {
	case on(st.Stealth) && class == probe.Timeout:
		return Finding{Cause: FirewallDrop, Confidence: Likely, Issue: "The Application Firewall drops the connection on this host",
			Evidence: quote, Fix: fix}, quote
	case !on(st.Stealth) && class == probe.Refused:
		return Finding{Cause: FirewallReject, Confidence: Likely, Issue: "The Application Firewall refuses the connection on this host",
			Evidence: quote, Fix: fix}, quote
	}
	return Finding{}, quote
}

// windowsFindings weighs the Windows Firewall in every profile: which one
// the network is in is not read, so a block in some profiles only is
// possible, in all of them confirmed (likely when the default policy
// blocks and a rule naming a program or a port keyword, not checked here,
// may allow it). A block is a silent drop.
func windowsFindings(ff *ForeignFirewall, ap netip.AddrPort, class probe.Class) ([]Finding, string, bool) {
	if len(ff.Unread) > 0 {
		return nil, strings.Join(ff.Unread, "; "), false
	}
	if ap.Addr().Unmap().IsLoopback() {
		return nil, "the Windows Firewall does not filter loopback: none of its rules apply", true
	}
	var blocked, passed, quotes, unchecked []string
	for _, p := range ff.WinProfiles {
		d := firewall.DecideWindows(p, ff.WinRules, ap.Port())
		if d.Block && d.Rule == nil && !p.BlockAlways {
			// The default blocks unless a rule not checked here allows
			// it; a block rule (always certain: rules naming a program
			// or a port keyword are not taken) wins over any allow rule.
			for _, u := range d.Unchecked {
				if !slices.Contains(unchecked, u) {
					unchecked = append(unchecked, u)
				}
			}
		}
		switch {
		case !d.Block && !p.Enabled:
			passed = append(passed, p.Name+" (off)")
		case !d.Block && d.Rule == nil:
			passed = append(passed, fmt.Sprintf("%s (Firewall Policy %s)", p.Name, p.Policy))
		case !d.Block:
			passed = append(passed, fmt.Sprintf("%s (rule %q allows it)", p.Name, d.Rule.Name))
		case d.Rule != nil:
			blocked = append(blocked, p.Name)
			quotes = append(quotes, fmt.Sprintf("netsh advfirewall, %s profile: rule %q (line %d): Action Block, LocalPort %s",
				p.Name, d.Rule.Name, d.Rule.Line, d.Rule.LocalPort))
		default:
			blocked = append(blocked, p.Name)
			quotes = append(quotes, fmt.Sprintf("netsh advfirewall, %s profile: Firewall Policy %s, and no rule allows tcp port %d",
				p.Name, p.Policy, ap.Port()))
		}
	}
	detail := fmt.Sprintf("the Windows Firewall, %d rules read", len(ff.WinRules))
	if len(blocked) > 0 {
		detail += fmt.Sprintf(", blocks tcp to %s in the %s profile", ap, strings.Join(blocked, ", "))
	}
	if len(passed) > 0 {
		detail += fmt.Sprintf(", lets it in in the %s profile", strings.Join(passed, ", "))
	}
	if len(blocked) == 0 {
		return nil, detail, true
	}
	if class != probe.Timeout {
		return nil, detail + fmt.Sprintf(" (a silent drop, which does not fit what the probe saw: %s)", class), true
	}
	conf := Confirmed
	quote := strings.Join(quotes, "; ")
	switch {
	case len(passed) > 0:
		conf = Possible
		quote += " (if the network is in that profile: netsh advfirewall show currentprofile)"
	case len(unchecked) > 0:
		conf = Likely
		quote += " (unless " + strings.Join(unchecked, ", ") + " decides instead)"
	}
	fix := fmt.Sprintf("allow tcp port %d: disable or narrow the blocking rule (netsh advfirewall firewall set rule "+
		"name=\"NAME\" new enable=no), or add one: netsh advfirewall firewall add rule name=\"reach %d\" dir=in "+
		"action=allow protocol=TCP localport=%d (BlockInboundAlways blocks even that)", ap.Port(), ap.Port(), ap.Port())
	return []Finding{{Cause: FirewallDrop, Confidence: conf, Issue: "The Windows Firewall drops the connection on this host",
		Evidence: quote, Fix: fix}}, detail, true
}

// toolTimeout bounds each firewall tool: netsh lists thousands of rules
// in about a second.
const toolTimeout = 10 * time.Second

// runTool runs a firewall tool and returns its output, or an error with
// the first line it wrote to stderr (pfctl's "Permission denied").
func runTool(ctx context.Context, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, toolTimeout)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		if msg, _, _ := strings.Cut(strings.TrimSpace(errb.String()), "\n"); msg != "" {
			return nil, fmt.Errorf("%s: %w: %s", name, err, msg)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out.Bytes(), nil
}
