package firewall

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// ErrDenied says the tools ran but were refused for lack of privilege.
var ErrDenied = errors.New("reading them needs root (CAP_NET_ADMIN)")

// Commands reads this host's rules with iptables-save and ip6tables-save
// (every table) and `nft -j list ruleset` (every table; quoted as `nft -a
// list ruleset` prints them). When iptables runs on nf_tables its tables
// appear in both; they are read from iptables-save only, in iptables
// syntax.
type Commands struct{}

// ErrNotNetfilter says the system's firewall is not netfilter, which Read
// reads: macOS's pf and Windows' firewall are parsed by ParsePfctl,
// ParseSocketfilterfw and ParseNetsh*, and decided by DecidePF and
// DecideWindows, but Read's Ruleset cannot hold them.
var ErrNotNetfilter = errors.New("the firewall is not netfilter")

// notNetfilter says, for a system other than Linux, which firewall it has
// and how to read it by hand, so the doctor says what it could not see
// instead of "iptables-save is not installed".
func notNetfilter(goos string) error {
	switch goos {
	case "linux":
		return nil
	case "darwin":
		return fmt.Errorf("%w: macOS filters with pf and the Application Firewall, which a Ruleset cannot hold; "+
			"read them with sudo pfctl -sr and /usr/libexec/ApplicationFirewall/socketfilterfw --getglobalstate --getblockall "+
			"(the doctor does, and weighs them)", ErrNotNetfilter)
	case "windows":
		return fmt.Errorf("%w: a Ruleset cannot hold the Windows Firewall; read it with "+
			"netsh advfirewall show allprofiles and netsh advfirewall firewall show rule name=all verbose "+
			"(the doctor does, and weighs it)", ErrNotNetfilter)
	}
	return fmt.Errorf("%w: reach reads only Linux's firewall (%s)", ErrNotNetfilter, goos)
}

// cmdTimeout bounds each command.
const cmdTimeout = 2 * time.Second

// iptablesTables are the tables iptables-nft makes in nftables.
var iptablesTables = map[string]bool{"filter": true, "nat": true, "mangle": true, "raw": true, "security": true}

// Read runs the commands. It fails only when no tool could be read; the
// Ruleset's Notes say what was missing or failed among the others. An
// error wrapping ErrDenied means every tool that ran was refused.
func (Commands) Read(ctx context.Context) (*Ruleset, error) {
	if err := notNetfilter(runtime.GOOS); err != nil {
		return nil, err
	}
	rs := &Ruleset{}
	nfIptables := false
	read := 0
	for _, v := range []struct{ cmd, family string }{{"iptables-save", "ip"}, {"ip6tables-save", "ip6"}} {
		if _, err := exec.LookPath(v.cmd); err != nil {
			rs.Notes = append(rs.Notes, v.cmd+" is not installed")
			continue
		}
		out, err := runCmd(ctx, v.cmd)
		if err != nil {
			rs.Notes = append(rs.Notes, fmt.Sprintf("could not read iptables rules: %v", err))
			continue
		}
		ipt, err := ParseIptablesSave(string(out), v.family)
		if err != nil {
			rs.Notes = append(rs.Notes, err.Error())
			continue
		}
		read++
		nfIptables = nfIptables || bytes.Contains(out, []byte("(nf_tables)"))
		rs.Tables = append(rs.Tables, ipt.Tables...)
	}
	if _, err := exec.LookPath("nft"); err != nil {
		rs.Notes = append(rs.Notes, "nft is not installed")
	} else if js, err := runCmd(ctx, "nft", "-j", "list", "ruleset"); err != nil {
		rs.Notes = append(rs.Notes, fmt.Sprintf("could not read nftables rules: %v", err))
	} else {
		var texts map[string]string
		if txt, err := runCmd(ctx, "nft", "-a", "list", "ruleset"); err == nil {
			texts = ParseNftText(string(txt))
		}
		nft, err := ParseNftJSON(js, texts)
		if err != nil {
			rs.Notes = append(rs.Notes, err.Error())
		} else {
			read++
			for _, t := range nft.Tables {
				if nfIptables && (t.Family == "ip" || t.Family == "ip6") && iptablesTables[t.Name] {
					continue // shown by iptables-save
				}
				rs.Tables = append(rs.Tables, t)
			}
		}
	}
	if read == 0 {
		if denied(rs.Notes) {
			return nil, fmt.Errorf("%w: nft and iptables-save were refused", ErrDenied)
		}
		return nil, errors.New(strings.Join(rs.Notes, "; "))
	}
	return rs, nil
}

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
