package fault

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
)

// ExecFunc runs a command with stdin and returns its combined output; the
// error says how it failed. Host.Exec takes one so tests can record the
// commands, and so a program can run them elsewhere.
type ExecFunc func(ctx context.Context, stdin string, name string, args ...string) ([]byte, error)

// Host applies and removes faults in the network namespace its commands
// run in (that of the process, with the default Exec). The zero value is
// ready to use.
type Host struct {
	// Backend is "nft", "iptables" or empty: nft when it works here, else
	// iptables (and ip6tables, when present). List, Sweep and Clear read
	// both kinds of rules whatever it says.
	Backend string
	// Exec runs nft, iptables and friends; nil runs them with os/exec.
	Exec ExecFunc
	// LockPath is the lock file that serialises changes on this host;
	// empty means /run/reach-fault.lock.
	LockPath string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Alive tells whether a fault's owner still runs; nil reads /proc.
	Alive func(Owner) bool
	// Logger receives what was removed and why; nil discards.
	Logger *slog.Logger
}

// Active is one fault found in the rules.
type Active struct {
	Marker
	Source  netip.Prefix // zero: every client
	Backend string       // "nft" or "iptables"
	Rules   int          // its rules (iptables: one per family)
	// Leftover says why the fault is no longer wanted: "expired", or
	// "owner gone" (the process that applied it died without removing
	// it); empty for a live fault.
	Leftover string
}

// Errors.
var (
	// ErrUnsupported: faults are firewall rules of Linux.
	ErrUnsupported = errors.New("fault: only on Linux (nftables or iptables)")
	// ErrNoFirewall: neither nft nor iptables works here.
	ErrNoFirewall = errors.New("fault: neither nft nor iptables works here")
)

// CmdError is a firewall command that failed, with its output.
type CmdError struct {
	Cmd    string
	Output string
	Err    error
}

func (e *CmdError) Error() string {
	return fmt.Sprintf("fault: %s: %v: %s", e.Cmd, e.Err, strings.TrimSpace(e.Output))
}
func (e *CmdError) Unwrap() error { return e.Err }

const cmdTimeout = 10 * time.Second

func (h *Host) run(ctx context.Context, stdin, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	var out []byte
	var err error
	if h.Exec != nil {
		out, err = h.Exec(ctx, stdin, name, args...)
	} else {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err = cmd.CombinedOutput()
	}
	if err != nil {
		return out, &CmdError{Cmd: strings.Join(append([]string{name}, args...), " "), Output: string(out), Err: err}
	}
	return out, nil
}

func (h *Host) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

func (h *Host) log() *slog.Logger {
	if h.Logger != nil {
		return h.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (h *Host) alive(o Owner) bool {
	if h.Alive != nil {
		return h.Alive(o)
	}
	return alive(o)
}

// backend picks where new rules go.
func (h *Host) backend(ctx context.Context) (string, error) {
	switch h.Backend {
	case "nft", "iptables":
		return h.Backend, nil
	case "":
	default:
		return "", fmt.Errorf("fault: backend %q: use nft or iptables", h.Backend)
	}
	if _, err := h.run(ctx, "", "nft", "list", "tables"); err == nil {
		return "nft", nil
	}
	if _, err := h.run(ctx, "", "iptables-save", "-t", "filter"); err == nil {
		return "iptables", nil
	}
	return "", ErrNoFirewall
}

// state is every rule of reach's table and chains, read at one moment.
type state struct {
	nft      []rule
	nftTable bool
	ipt      map[string]iptState // by tool: iptables, ip6tables
}

var iptTools = []string{"iptables", "ip6tables"}

// read reads reach's rules. A missing nft or iptables is no rules; nft's
// table and iptables' chain are only ever listed by name, so reading
// creates nothing (iptables-save does not make the tables it prints).
func (h *Host) read(ctx context.Context) (*state, error) {
	st := &state{ipt: map[string]iptState{}}
	out, err := h.run(ctx, "", "nft", "-j", "list", "table", "inet", nftTable)
	switch {
	case err == nil:
		st.nftTable = true
		if st.nft, err = parseNftTable(out); err != nil {
			return nil, err
		}
	case errors.Is(err, exec.ErrNotFound):
	case bytes.Contains(out, []byte("No such file or directory")):
	case bytes.Contains(out, []byte("Operation not permitted")):
		return nil, fmt.Errorf("%w (reading firewall rules needs root, CAP_NET_ADMIN)", err)
	default:
		// nft is there but fails otherwise: if it works at all, the table
		// cannot be read; if not (no nf_tables), iptables may still work.
		if _, lerr := h.run(ctx, "", "nft", "list", "tables"); lerr == nil {
			return nil, err
		}
	}
	for _, tool := range iptTools {
		out, err := h.run(ctx, "", tool+"-save", "-t", "filter")
		if err != nil {
			continue // no such tool, or no filter table
		}
		st.ipt[tool] = parseIptablesSave(out, tool)
	}
	return st, nil
}

// faults groups the rules by their marker. Rules without reach's marker
// are left out: reach never touches them.
func (h *Host) faults(st *state) (list []Active, byID map[string][]rule) {
	byID = map[string][]rule{}
	idx := map[string]int{}
	add := func(r rule, backend string) {
		m, err := ParseMarker(r.Comment)
		if err != nil {
			return
		}
		byID[m.ID] = append(byID[m.ID], r)
		if i, ok := idx[m.ID]; ok {
			list[i].Rules++
			return
		}
		a := Active{Marker: m, Source: r.Source, Backend: backend, Rules: 1}
		switch {
		case !h.now().Before(m.Expires):
			a.Leftover = "expired"
		case !h.alive(m.Owner):
			a.Leftover = "owner gone"
		}
		idx[m.ID] = len(list)
		list = append(list, a)
	}
	for _, r := range st.nft {
		add(r, "nft")
	}
	for _, tool := range iptTools {
		for _, r := range st.ipt[tool].rules {
			add(r, "iptables")
		}
	}
	slices.SortStableFunc(list, func(a, b Active) int { return a.Expires.Compare(b.Expires) })
	return list, byID
}

// List returns the faults in reach's rules, live ones and leftovers.
func (h *Host) List(ctx context.Context) ([]Active, error) {
	if runtime.GOOS != "linux" {
		return nil, ErrUnsupported
	}
	st, err := h.read(ctx)
	if err != nil {
		return nil, err
	}
	list, _ := h.faults(st)
	return list, nil
}

// remove deletes the rules of the faults whose ids are given, and reach's
// table, chain and jump once no rule is left in them. Called locked.
func (h *Host) remove(ctx context.Context, st *state, byID map[string][]rule, ids []string) error {
	gone := map[string]map[int]bool{} // tool -> handles
	for _, id := range ids {
		for _, r := range byID[id] {
			if gone[r.Tool] == nil {
				gone[r.Tool] = map[int]bool{}
			}
			gone[r.Tool][r.Handle] = true
		}
	}
	var errs []error
	if len(gone["nft"]) > 0 {
		var handles []int
		for _, r := range st.nft {
			if gone["nft"][r.Handle] {
				handles = append(handles, r.Handle)
			}
		}
		all := len(handles) == len(st.nft)
		if _, err := h.run(ctx, nftDeleteScript(handles, all), "nft", "-f", "-"); err != nil {
			errs = append(errs, err)
		}
	}
	for _, tool := range iptTools {
		ist := st.ipt[tool]
		if len(gone[tool]) == 0 {
			continue
		}
		left := len(ist.rules)
		for i := len(ist.rules) - 1; i >= 0; i-- { // from the end: numbers stay valid
			r := ist.rules[i]
			if !gone[tool][r.Handle] {
				continue
			}
			if _, err := h.run(ctx, "", tool, "-w", "5", "-D", iptChain, fmt.Sprint(r.Handle)); err != nil {
				errs = append(errs, err)
				continue
			}
			left--
		}
		if left == 0 {
			if ist.jump {
				if _, err := h.run(ctx, "", tool, append([]string{"-w", "5", "-D", "INPUT"}, iptJumpArgs()...)...); err != nil {
					errs = append(errs, err)
				}
			}
			if _, err := h.run(ctx, "", tool, "-w", "5", "-X", iptChain); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// Apply sweeps leftovers, then adds spec's rules, owned by this process.
func (h *Host) Apply(ctx context.Context, spec Spec) (Active, error) {
	if runtime.GOOS != "linux" {
		return Active{}, ErrUnsupported
	}
	if err := spec.Validate(); err != nil {
		return Active{}, err
	}
	backend, err := h.backend(ctx)
	if err != nil {
		return Active{}, err
	}
	unlock, err := h.lock(ctx)
	if err != nil {
		return Active{}, err
	}
	defer unlock()
	if _, err := h.sweep(ctx, false); err != nil {
		return Active{}, err
	}
	id, err := newID()
	if err != nil {
		return Active{}, err
	}
	exp := h.now().Add(spec.For)
	m := Marker{ID: id, Mode: spec.Mode, Port: spec.Port, Owner: self(),
		Expires:     time.Unix(exp.Unix()+boolInt(exp.Nanosecond() > 0), 0), // rounded up
		Probability: spec.Probability}
	if m.Probability >= 1 {
		m.Probability = 0
	}
	a := Active{Marker: m, Source: spec.Source, Backend: backend}
	switch backend {
	case "nft":
		if _, err := h.run(ctx, nftAddScript(m, spec.Source), "nft", "-f", "-"); err != nil {
			return Active{}, err
		}
		a.Rules = 1
	case "iptables":
		if a.Rules, err = h.addIptables(ctx, m, spec.Source); err != nil {
			return Active{}, err
		}
	}
	h.log().Info("fault applied", "id", id, "mode", string(m.Mode), "port", m.Port,
		"until", m.Expires, "backend", backend)
	return a, nil
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// addIptables adds the fault to iptables and to ip6tables (when present
// and the source, if any, is of its family); it returns how many rules it
// added. On a failure the rules added so far are removed again.
func (h *Host) addIptables(ctx context.Context, m Marker, src netip.Prefix) (int, error) {
	st, err := h.read(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, tool := range iptTools {
		v6 := tool == "ip6tables"
		ist, ok := st.ipt[tool]
		if !ok || src.IsValid() && src.Addr().Is6() != v6 {
			continue
		}
		err := func() error {
			if !ist.chain {
				if _, err := h.run(ctx, "", tool, "-w", "5", "-N", iptChain); err != nil {
					return err
				}
			}
			if _, err := h.run(ctx, "", tool, append([]string{"-w", "5", "-A", iptChain}, iptRuleArgs(m, src, v6)...)...); err != nil {
				return err
			}
			if !ist.jump {
				if _, err := h.run(ctx, "", tool, append([]string{"-w", "5", "-I", "INPUT", "1"}, iptJumpArgs()...)...); err != nil {
					return err
				}
			}
			return nil
		}()
		if err != nil {
			if st, rerr := h.read(ctx); rerr == nil {
				_, byID := h.faults(st)
				err = errors.Join(err, h.remove(ctx, st, byID, []string{m.ID}))
			}
			return 0, err
		}
		n++
	}
	if n == 0 {
		return 0, fmt.Errorf("%w: no iptables tool for %v", ErrNoFirewall, src)
	}
	return n, nil
}

// Remove removes the faults with the given ids (each process removes its
// own). Ids not found are not an error: a sweep may have come first.
func (h *Host) Remove(ctx context.Context, ids ...string) error {
	if runtime.GOOS != "linux" {
		return ErrUnsupported
	}
	unlock, err := h.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	st, err := h.read(ctx)
	if err != nil {
		return err
	}
	_, byID := h.faults(st)
	return h.remove(ctx, st, byID, ids)
}

// Sweep removes leftovers: faults whose expiry has passed or whose owner
// is gone. It returns what it removed.
func (h *Host) Sweep(ctx context.Context) ([]Active, error) {
	return h.locked(ctx, false)
}

// Clear removes every fault reach applied here, live or not, and returns
// them. Their owners notice at their expiry that nothing is left to remove.
func (h *Host) Clear(ctx context.Context) ([]Active, error) {
	return h.locked(ctx, true)
}

func (h *Host) locked(ctx context.Context, all bool) ([]Active, error) {
	if runtime.GOOS != "linux" {
		return nil, ErrUnsupported
	}
	unlock, err := h.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	return h.sweep(ctx, all)
}

func (h *Host) sweep(ctx context.Context, all bool) ([]Active, error) {
	st, err := h.read(ctx)
	if err != nil {
		return nil, err
	}
	list, byID := h.faults(st)
	var ids []string
	var removed []Active
	for _, a := range list {
		if all || a.Leftover != "" {
			ids = append(ids, a.ID)
			removed = append(removed, a)
			h.log().Info("fault removed", "id", a.ID, "mode", string(a.Mode), "port", a.Port,
				"why", cmp.Or(a.Leftover, "cleared"))
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	return removed, h.remove(ctx, st, byID, ids)
}

func newID() (string, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("fault: making an id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
