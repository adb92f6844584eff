package agent

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/internal/bounded"
)

// PathRegister is where an agent the hub config does not list announces
// itself (POST Registration -> RegisterReply) and leaves
// (DELETE ?agent=NAME&run=RUN). The hub serves it.
const PathRegister = "/agent/v1/register"

// Registration is what an agent announces of itself: the hub builds its
// probe list, and the other agents' lists, from its labels and the rules
// of its config (see package hub).
type Registration struct {
	Name string `json:"name"`
	// Addrs are this host's addresses, first the one peers probe; at most
	// MaxAddrs.
	Addrs  []netip.Addr      `json:"addrs"`
	Labels map[string]string `json:"labels,omitempty"`
	// Advertise is the agent's base URL (Config.Advertise); its host must
	// be one of Addrs.
	Advertise string `json:"advertise,omitempty"`
	// Run is Batch.Run: a later run replaces an earlier one, and a
	// deregistration of an earlier run removes nothing.
	Run int64 `json:"run"`
}

// RegisterReply is the hub's answer to a registration.
type RegisterReply struct {
	Name    string `json:"name"`
	Targets int    `json:"targets"` // how many targets its probe list holds now
}

// Bounds on a registration. They follow Kubernetes' own for labels, so
// that a pod's labels pass whole, and keep what one token holder can make
// the hub keep small.
const (
	MaxAddrs         = 4
	MaxLabels        = 32
	MaxLabelName     = 63  // the name part of a key, and a value
	MaxLabelPrefix   = 253 // the DNS-subdomain prefix of a key
	MaxLabelsFile    = 64 << 10
	maxRegistrationB = 16 << 10 // a registration's JSON, far above the largest valid one
)

// ErrRegistration marks a registration the hub refuses for its content
// (a *RegistrationError).
var ErrRegistration = errors.New("agent: invalid registration")

// RegistrationError is one thing wrong with a registration.
type RegistrationError struct {
	Field  string // "name", "addrs[1]", `labels["a b"]`
	Reason string
}

func (e *RegistrationError) Error() string {
	return "agent: registration: " + e.Field + ": " + e.Reason
}

func (e *RegistrationError) Unwrap() error { return ErrRegistration }

func regErr(field, format string, args ...any) error {
	return &RegistrationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Check refuses a registration a hub must not keep: a bad name, no address
// or more than MaxAddrs, an address no peer can probe (Forbidden, or
// loopback), labels that Kubernetes would refuse or more than MaxLabels,
// an advertised URL outside Addrs. Everything an agent sends is anybody's
// string: the hub keeps only what passes.
func (r Registration) Check() error {
	if !endpoint.ValidName(r.Name) {
		return regErr("name", "%q: want 1-64 letters, digits, '.', '_' or '-', starting with a "+
			"letter or digit", clip(r.Name))
	}
	if len(r.Addrs) == 0 {
		return regErr("addrs", "none: give the address peers reach this host on (--addr)")
	}
	if len(r.Addrs) > MaxAddrs {
		return regErr("addrs", "%d addresses; at most %d", len(r.Addrs), MaxAddrs)
	}
	for i, a := range r.Addrs {
		f := "addrs[" + strconv.Itoa(i) + "]"
		switch {
		case !a.IsValid():
			return regErr(f, "not an IP address")
		case a.Zone() != "":
			return regErr(f, "%s has a zone: a scoped address is no peer's", a)
		case a.Unmap().IsLoopback():
			return regErr(f, "%s is loopback: peers cannot reach it", a)
		case Forbidden(a) != "":
			return regErr(f, "%s is %s: agents refuse to probe it", a, Forbidden(a))
		case slices.Index(r.Addrs, a) < i:
			return regErr(f, "%s is listed twice", a)
		}
	}
	if err := CheckLabels(r.Labels); err != nil {
		return err
	}
	if r.Advertise != "" {
		ip, err := advertisedIP(r.Advertise)
		if err != nil {
			return regErr("advertise", "%v", err)
		}
		if !slices.ContainsFunc(r.Addrs, func(a netip.Addr) bool { return a.Unmap() == ip }) {
			return regErr("advertise", "%q: its host must be one of addrs %v", clip(r.Advertise), r.Addrs)
		}
	}
	if r.Run <= 0 {
		return regErr("run", "%d: want when the agent started, in Unix nanoseconds", r.Run)
	}
	return nil
}

// advertisedIP is the IP address of an agent's base URL: http(s), an IP
// address and a port, no path.
func advertisedIP(adv string) (netip.Addr, error) {
	u, err := url.Parse(adv)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Port() == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return netip.Addr{}, fmt.Errorf("%q: want http(s)://address:port", clip(adv))
	}
	ip, err := netip.ParseAddr(u.Hostname())
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%q: want an IP address, not a name", clip(adv))
	}
	return ip.Unmap(), nil
}

// clip shortens anybody's string for a message.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// CheckLabels refuses labels Kubernetes would refuse: at most MaxLabels;
// keys "name" or "prefix/name", the name 1-63 characters of letters,
// digits, '-', '_' and '.', starting and ending with a letter or digit,
// the prefix a DNS subdomain of at most 253; values empty or like a name.
func CheckLabels(labels map[string]string) error {
	if len(labels) > MaxLabels {
		return regErr("labels", "%d labels; at most %d", len(labels), MaxLabels)
	}
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		f := "labels[" + strconv.Quote(clip(k)) + "]"
		if err := checkLabelKey(k); err != nil {
			return regErr(f, "key: %v", err)
		}
		if v := labels[k]; v != "" && !labelName(v) {
			return regErr(f, "value %q: want at most 63 letters, digits, '-', '_' or '.', "+
				"starting and ending with a letter or digit", clip(v))
		}
	}
	return nil
}

func checkLabelKey(k string) error {
	prefix, name, ok := strings.Cut(k, "/")
	if !ok {
		prefix, name = "", k
	} else if !dnsSubdomain(prefix) {
		return fmt.Errorf("prefix %q: want a DNS subdomain (lower-case letters, digits, '-' "+
			"and '.', at most %d)", clip(prefix), MaxLabelPrefix)
	}
	if !labelName(name) {
		return fmt.Errorf("name %q: want 1-63 letters, digits, '-', '_' or '.', starting and "+
			"ending with a letter or digit", clip(name))
	}
	return nil
}

// labelName is Kubernetes' qualified name (without prefix), also its
// label value when not empty.
func labelName(s string) bool {
	if len(s) == 0 || len(s) > MaxLabelName || !alnum(s[0]) || !alnum(s[len(s)-1]) {
		return false
	}
	for i := range len(s) {
		if c := s[i]; !alnum(c) && c != '-' && c != '_' && c != '.' {
			return false
		}
	}
	return true
}

// dnsSubdomain is RFC 1123: dot-separated labels of lower-case letters,
// digits and '-', each starting and ending with a letter or digit.
func dnsSubdomain(s string) bool {
	if len(s) == 0 || len(s) > MaxLabelPrefix {
		return false
	}
	for part := range strings.SplitSeq(s, ".") {
		if len(part) == 0 || len(part) > 63 || !lowerAlnum(part[0]) || !lowerAlnum(part[len(part)-1]) {
			return false
		}
		for i := range len(part) {
			if c := part[i]; !lowerAlnum(c) && c != '-' {
				return false
			}
		}
	}
	return true
}

func alnum(c byte) bool      { return lowerAlnum(c) || 'A' <= c && c <= 'Z' }
func lowerAlnum(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }

// ErrLabelsFile marks a labels file that does not parse.
var ErrLabelsFile = errors.New("agent: labels file")

// ParseLabels reads labels in the Downward API's format, one key="value"
// a line (the value quoted as Go quotes strings); blank lines are skipped.
// The labels are checked as CheckLabels does.
func ParseLabels(b []byte) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 1024), MaxLabelsFile)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		k, q, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%w: line %d: want key=\"value\", got %q", ErrLabelsFile, n, clip(line))
		}
		v, err := strconv.Unquote(q)
		if err != nil || !strings.HasPrefix(q, `"`) {
			return nil, fmt.Errorf("%w: line %d: the value of %q is not a quoted string: %q",
				ErrLabelsFile, n, clip(k), clip(q))
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("%w: line %d: %q is given twice", ErrLabelsFile, n, clip(k))
		}
		out[k] = v
		if len(out) > MaxLabels {
			return nil, fmt.Errorf("%w: line %d: more than %d labels", ErrLabelsFile, n, MaxLabels)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrLabelsFile, err)
	}
	if err := CheckLabels(out); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrLabelsFile, err)
	}
	return out, nil
}

// ReadLabels reads a labels file (ParseLabels), at most MaxLabelsFile bytes.
func ReadLabels(path string) (map[string]string, error) {
	b, err := bounded.ReadFile(path, "labels file", MaxLabelsFile)
	if err != nil {
		return nil, err
	}
	l, err := ParseLabels(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return l, nil
}
