package netlab

import (
	"bufio"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// RuleTool names the firewall a ruleset is written for, in the format of
// the command that prints it back: iptables-save, ip6tables-save or
// nft list ruleset.
type RuleTool string

const (
	IPTables  RuleTool = "iptables"
	IP6Tables RuleTool = "ip6tables"
	NFTables  RuleTool = "nft"
)

// Rules is a ruleset loaded into a host by ApplyRules or AddRule. It is
// removed when the test that loaded it ends, or earlier by Remove.
type Rules struct {
	Host *Host
	Tool RuleTool
	// Text is what was loaded, exactly. Written in iptables-save's own
	// order of options, each rule line is also what iptables-save prints.
	Text string

	undo string // the script that takes Text back out
	mu   sync.Mutex
	done bool
}

// RuleError is a ruleset the firewall tool refused. Line (1-based, 0 if the
// tool did not say) and Rule quote the line it refused; Output is what the
// tool printed.
type RuleError struct {
	Host   string
	Tool   RuleTool
	Line   int
	Rule   string
	Output string
	Err    error
}

func (e *RuleError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "netlab: %s in %s refused ", e.Tool, e.Host)
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d of the rules:\n\t%s\n", e.Line, e.Rule)
	} else {
		fmt.Fprintf(&b, "the rules:\n%s\n", indent(e.Rule))
	}
	fmt.Fprintf(&b, "%s: %v", strings.TrimSpace(e.Output), e.Err)
	return b.String()
}

func (e *RuleError) Unwrap() error { return e.Err }

func indent(s string) string {
	var b strings.Builder
	for line := range strings.Lines(strings.TrimRight(s, "\n")) {
		b.WriteString("\t" + line)
	}
	return b.String()
}

// errLine finds the line number in an iptables-restore or nft error:
// "Error occurred at line: 3", "line 3 failed", "/dev/stdin:3:7-10: Error".
var errLine = regexp.MustCompile(`(?:line:? |/dev/stdin:)(\d+)`)

// ApplyRules loads a ruleset into h and fails t with the refused line and
// the tool's message if the tool refuses it. For IPTables and IP6Tables
// rules is iptables-save text (*table, :CHAIN lines, -A/-I rules, COMMIT),
// loaded with iptables-restore --noflush: a :CHAIN line for a chain that
// exists flushes it, so declare only the chains the ruleset creates. For
// NFTables it is an nft script. The ruleset is taken out again when t's test
// ends: iptables rules are deleted one by one, the chains they declared
// deleted and the policies they set restored; nft tables the script created
// are deleted (rules it added to tables that existed before stay).
func (h *Host) ApplyRules(t testing.TB, tool RuleTool, rules string) *Rules {
	t.Helper()
	r, err := h.applyRules(tool, rules)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.remove(); err != nil && namespaceExists(h.name) {
			t.Errorf("netlab: removing rules at the end of the test: %v", err)
		}
	})
	return r
}

// AddRule adds one IPv4 iptables rule in table (filter, nat, raw, mangle),
// written as after iptables -t TABLE, e.g.
// AddRule(t, "filter", "-A INPUT -p tcp -m tcp --dport 80 -j DROP").
// Quote an argument with spaces as iptables-save does ("a comment").
func (h *Host) AddRule(t testing.TB, table, rule string) *Rules {
	t.Helper()
	return h.ApplyRules(t, IPTables, "*"+table+"\n"+rule+"\nCOMMIT\n")
}

// Remove takes the ruleset out now, failing t if the tool refuses.
// Removing twice is a no-op.
func (r *Rules) Remove(t testing.TB) {
	t.Helper()
	if err := r.remove(); err != nil {
		t.Fatal(err)
	}
}

// Lines returns the rule lines (-A ...) of table, in order; for nft
// rulesets it returns nil.
func (r *Rules) Lines(table string) []string {
	if r.Tool == NFTables {
		return nil
	}
	var lines []string
	cur := ""
	for line := range strings.Lines(r.Text) {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "*"):
			cur = line[1:]
		case cur == table && (strings.HasPrefix(line, "-A ") || strings.HasPrefix(line, "-I ")):
			lines = append(lines, line)
		}
	}
	return lines
}

func (h *Host) applyRules(tool RuleTool, rules string) (*Rules, error) {
	r := &Rules{Host: h, Tool: tool, Text: rules}
	var before []string
	switch tool {
	case IPTables, IP6Tables:
		undo, err := iptablesUndo(rules, func(table, chain string) (string, error) {
			return h.policy(tool, table, chain)
		})
		if err != nil {
			return nil, err
		}
		r.undo = undo
	case NFTables:
		var err error
		if before, err = h.nftTables(); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("netlab: unknown rule tool %q", tool)
	}
	if out, err := h.load(tool, rules); err != nil {
		re := &RuleError{Host: h.name, Tool: tool, Output: string(out), Err: err, Rule: rules}
		if m := errLine.FindStringSubmatch(string(out)); m != nil {
			n, _ := strconv.Atoi(m[1])
			if lines := strings.Split(rules, "\n"); n >= 1 && n <= len(lines) {
				re.Line, re.Rule = n, lines[n-1]
			}
		}
		return nil, re
	}
	if tool == NFTables {
		after, err := h.nftTables()
		if err != nil {
			return nil, err
		}
		var undo strings.Builder
		for _, tb := range after {
			if !slices.Contains(before, tb) {
				undo.WriteString("delete table " + tb + "\n")
			}
		}
		r.undo = undo.String()
	}
	return r, nil
}

func (r *Rules) remove() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return nil
	}
	r.done = true
	if r.undo == "" {
		return nil
	}
	if out, err := r.Host.load(r.Tool, r.undo); err != nil {
		return &RuleError{Host: r.Host.name, Tool: r.Tool, Output: string(out), Err: err, Rule: r.undo}
	}
	return nil
}

// load feeds a ruleset to the tool's loader inside h.
func (h *Host) load(tool RuleTool, rules string) ([]byte, error) {
	args := []string{"netns", "exec", h.name}
	switch tool {
	case NFTables:
		args = append(args, "nft", "-f", "-")
	default:
		// -w: the xtables lock is shared by every namespace.
		args = append(args, string(tool)+"-restore", "--noflush", "-w")
	}
	return run(strings.NewReader(rules), "ip", args...)
}

// nftTables lists h's nft tables as "FAMILY NAME".
func (h *Host) nftTables() ([]string, error) {
	out, err := h.Exec("nft", "list", "tables")
	if err != nil {
		return nil, fmt.Errorf("netlab: %w\n%s", err, out)
	}
	var tables []string
	for line := range strings.Lines(string(out)) {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "table" {
			tables = append(tables, f[1]+" "+f[2])
		}
	}
	return tables, nil
}

// iptablesUndo writes the iptables-restore script that takes rules back
// out: per table, in reverse, each -A/-I rule deleted, then each declared
// chain deleted and each changed policy set back to what policy says it
// is now.
func iptablesUndo(rules string, policy func(table, chain string) (string, error)) (string, error) {
	type table struct {
		name     string
		rules    []string
		chains   []string
		policies []string
	}
	var tables []*table
	var cur *table
	sc := bufio.NewScanner(strings.NewReader(rules))
	sc.Buffer(nil, 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		bad := func(why string) error {
			return fmt.Errorf("netlab: line %d of the rules, %q: %s", n, line, why)
		}
		f := strings.Fields(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || line == "COMMIT":
		case strings.HasPrefix(line, "*"):
			cur = &table{name: line[1:]}
			tables = append(tables, cur)
		case cur == nil:
			return "", bad("a rule before the first *table line")
		case strings.HasPrefix(line, ":") && len(f) >= 2:
			chain := f[0][1:]
			if f[1] == "-" {
				cur.chains = append(cur.chains, chain)
				continue
			}
			pol, err := policy(cur.name, chain)
			if err != nil {
				return "", err
			}
			cur.policies = append(cur.policies, ":"+chain+" "+pol+" [0:0]")
		case f[0] == "-N" && len(f) == 2:
			cur.chains = append(cur.chains, f[1])
		case f[0] == "-P" && len(f) == 3:
			pol, err := policy(cur.name, f[1])
			if err != nil {
				return "", err
			}
			cur.policies = append(cur.policies, "-P "+f[1]+" "+pol)
		case f[0] == "-A" && len(f) >= 2:
			cur.rules = append(cur.rules, "-D"+strings.TrimPrefix(line, "-A"))
		case f[0] == "-I" && len(f) >= 2:
			spec := strings.TrimSpace(strings.TrimPrefix(line, "-I "+f[1]))
			if len(f) >= 3 {
				if _, err := strconv.Atoi(f[2]); err == nil {
					spec = strings.TrimSpace(strings.TrimPrefix(spec, f[2]))
				}
			}
			cur.rules = append(cur.rules, "-D "+f[1]+" "+spec)
		default:
			return "", bad("only *table, :CHAIN, -N, -P, -A and -I lines can be taken back out; use Host.Iptables for others")
		}
	}
	var undo strings.Builder
	for _, tb := range slices.Backward(tables) {
		undo.WriteString("*" + tb.name + "\n")
		for _, p := range tb.policies {
			undo.WriteString(p + "\n")
		}
		for _, r := range slices.Backward(tb.rules) {
			undo.WriteString(r + "\n")
		}
		for _, c := range slices.Backward(tb.chains) {
			undo.WriteString("-X " + c + "\n")
		}
		undo.WriteString("COMMIT\n")
	}
	return undo.String(), nil
}

// policy returns the current policy of a built-in chain.
func (h *Host) policy(tool RuleTool, table, chain string) (string, error) {
	out, err := h.Exec(string(tool), "-w", "-t", table, "-S", chain)
	if err != nil {
		return "", fmt.Errorf("netlab: %w\n%s", err, out)
	}
	for line := range strings.Lines(string(out)) {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "-P" && f[1] == chain {
			return f[2], nil
		}
	}
	return "", fmt.Errorf("netlab: %s -t %s -S %s in %s printed no policy:\n%s", tool, table, chain, h.name, out)
}

var backend struct {
	once sync.Once
	name string
	err  error
}

// IptablesBackend says which kernel interface the iptables command on this
// machine writes to, "nf_tables" or "legacy", from iptables --version. The
// lab writes with that command and the doctor reads back with the matching
// iptables-save, so the two always agree; tests that compare with an nft
// listing need nf_tables.
func IptablesBackend() (string, error) {
	backend.once.Do(func() {
		out, err := exec.Command("iptables", "--version").CombinedOutput()
		switch s := string(out); {
		case err != nil:
			backend.err = fmt.Errorf("netlab: iptables --version: %w\n%s", err, out)
		case strings.Contains(s, "nf_tables"):
			backend.name = "nf_tables"
		case strings.Contains(s, "legacy"):
			backend.name = "legacy"
		default:
			backend.err = fmt.Errorf("netlab: iptables --version names no backend: %q", s)
		}
	})
	return backend.name, backend.err
}
