package endpoint

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"net/netip"
	"strconv"
	"strings"
)

// Hosts is one scan target as a user typed it: a host name (resolved later),
// or a contiguous address range from an IP literal, a CIDR block
// (198.18.0.0/24, fd00::/120) or a dashed range (198.18.0.1-20,
// 198.18.0.1-198.18.1.5, fd00::1-fd00::ff). For a name, First and Last are
// invalid; for a range, Name is empty.
type Hosts struct {
	Input       string
	Name        string
	First, Last netip.Addr
}

// IsName reports whether the target is a host name that still needs resolving.
func (h Hosts) IsName() bool { return h.Name != "" }

// Len returns how many addresses the range holds (1 for a name), saturating
// at math.MaxUint64 for huge IPv6 blocks.
func (h Hosts) Len() uint64 {
	if h.IsName() {
		return 1
	}
	a, b := h.First.As16(), h.Last.As16()
	hi := func(x [16]byte) uint64 { return be64(x[:8]) }
	lo := func(x [16]byte) uint64 { return be64(x[8:]) }
	if hi(a) != hi(b) {
		return math.MaxUint64
	}
	n := lo(b) - lo(a)
	if n == math.MaxUint64 {
		return n
	}
	return n + 1
}

func be64(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

// Contains reports whether a falls in the range (never for a name).
func (h Hosts) Contains(a netip.Addr) bool {
	if h.IsName() || !a.IsValid() {
		return false
	}
	a = a.Unmap().WithZone(h.First.Zone())
	return a.BitLen() == h.First.BitLen() && h.First.Compare(a) <= 0 && a.Compare(h.Last) <= 0
}

// All yields every address of the range in order (nothing for a name).
func (h Hosts) All() iter.Seq[netip.Addr] {
	return func(yield func(netip.Addr) bool) {
		if h.IsName() {
			return
		}
		for a := h.First; a.IsValid() && a.Compare(h.Last) <= 0; a = a.Next() {
			if !yield(a) {
				return
			}
		}
	}
}

// String renders the target in a form ParseHosts accepts back.
func (h Hosts) String() string {
	switch {
	case h.IsName():
		return h.Name
	case h.First == h.Last:
		return h.First.String()
	}
	if p, ok := h.prefix(); ok {
		return p.String()
	}
	return h.First.String() + "-" + h.Last.String()
}

// prefix returns the CIDR block the range is exactly, if it is one.
func (h Hosts) prefix() (netip.Prefix, bool) {
	if h.First.Zone() != "" {
		return netip.Prefix{}, false
	}
	for bits := 0; bits <= h.First.BitLen(); bits++ {
		p := netip.PrefixFrom(h.First, bits).Masked()
		if p.Addr() == h.First && lastOf(p) == h.Last {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// lastOf returns the highest address in p.
func lastOf(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// ParseHosts parses one scan target: a host name, an IPv4 or IPv6 literal,
// a CIDR block, or a dashed range, either of the last IPv4 octet
// ("198.18.0.1-20") or between two addresses of one family
// ("198.18.0.250-198.18.1.5", "fd00::1-fd00::ff"). A CIDR with host bits set
// means the whole block, as in nmap.
func ParseHosts(s string) (Hosts, error) {
	in := s
	s = strings.TrimSpace(s)
	if s == "" {
		return Hosts{}, parseErr(in, ErrSyntax, "empty target; want a host, address, CIDR or range")
	}
	if strings.Contains(s, "://") {
		return Hosts{}, parseErr(in, ErrSyntax, "looks like a URL; give a host or address (ports go in -p)")
	}
	// "[::1]", as written before a port elsewhere, is the address itself.
	if inner, ok := strings.CutPrefix(s, "["); ok && strings.HasSuffix(inner, "]") {
		if a, err := netip.ParseAddr(strings.TrimSuffix(inner, "]")); err == nil && a.Is6() {
			s = a.String()
		}
	}
	if i := strings.IndexByte(s, '/'); i >= 0 {
		return parseCIDR(in, s, i)
	}
	if i := strings.IndexByte(s, '-'); i >= 0 && looksLikeRange(s, i) {
		return parseRangeHosts(in, s, i)
	}
	if a, err := netip.ParseAddr(s); err == nil {
		if err := checkHost(s); err != nil {
			return Hosts{}, parseErr(in, ErrBadHost, "%v", err)
		}
		a = a.Unmap()
		return Hosts{Input: in, First: a, Last: a}, nil
	}
	if strings.Contains(s, ":") {
		if _, port, err := splitHostPort(s); err == nil && port != "" {
			return Hosts{}, parseErr(in, ErrSyntax, "a scan target has no port; give ports with -p")
		}
		return Hosts{}, parseErr(in, ErrBadHost, "%q is not an IPv6 address", s)
	}
	if err := checkHost(s); err != nil {
		return Hosts{}, parseErr(in, ErrBadHost, "%v", err)
	}
	return Hosts{Input: in, Name: s}, nil
}

// looksLikeRange tells "198.18.0.1-20" and "fd00::1-fd00::2" from host names
// with dashes ("db-1"): the part before the dash must be an IP literal. After
// a zone, a dash belongs to the interface name ("fe80::1%br-lan") unless an
// address follows it.
func looksLikeRange(s string, dash int) bool {
	a, err := netip.ParseAddr(s[:dash])
	if err == nil && a.Zone() != "" {
		_, err = netip.ParseAddr(s[dash+1:])
	}
	return err == nil
}

func parseCIDR(in, s string, slash int) (Hosts, error) {
	if _, err := netip.ParseAddr(s[:slash]); err != nil {
		return Hosts{}, parseErr(in, ErrBadHost,
			"%q before '/' is not an IP address (names with a prefix length are not supported)", s[:slash])
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return Hosts{}, parseErr(in, ErrSyntax, "invalid CIDR block; want e.g. 198.18.0.0/24 or fd00::/120")
	}
	if p.Addr().Is4In6() {
		return Hosts{}, parseErr(in, ErrSyntax,
			"IPv4-mapped IPv6 blocks are not supported; write the IPv4 block")
	}
	p = p.Masked()
	return Hosts{Input: in, First: p.Addr(), Last: lastOf(p)}, nil
}

func parseRangeHosts(in, s string, dash int) (Hosts, error) {
	first, _ := netip.ParseAddr(s[:dash])
	if first.Zone() != "" {
		return Hosts{}, parseErr(in, ErrSyntax, "address ranges cannot carry an IPv6 zone")
	}
	first = first.Unmap()
	end := s[dash+1:]
	var last netip.Addr
	switch {
	case end == "":
		return Hosts{}, parseErr(in, ErrSyntax, "range has no end; want e.g. 198.18.0.1-20")
	case first.Is4() && isDigits(end):
		n, err := strconv.ParseUint(end, 10, 16)
		if err != nil || n > 255 || (len(end) > 1 && end[0] == '0') {
			return Hosts{}, parseErr(in, ErrSyntax, "range end %q is not an octet 0-255", end)
		}
		b := first.As4()
		b[3] = byte(n)
		last = netip.AddrFrom4(b)
	default:
		a, err := netip.ParseAddr(end)
		if err != nil || a.Zone() != "" {
			return Hosts{}, parseErr(in, ErrSyntax, "range end %q is not an address or a last octet", end)
		}
		last = a.Unmap()
		if last.BitLen() != first.BitLen() {
			return Hosts{}, parseErr(in, ErrSyntax, "range mixes IPv4 and IPv6")
		}
	}
	if last.Less(first) {
		return Hosts{}, parseErr(in, ErrSyntax, "range runs backwards (%s > %s)", first, last)
	}
	return Hosts{Input: in, First: first, Last: last}, nil
}

// ParseHostList parses targets separated by commas or white space, as typed
// after --exclude or read from a target file. Text from '#' to the end of a
// line is a comment.
func ParseHostList(s string) ([]Hosts, error) {
	var out []Hosts
	n, multi := 0, strings.Contains(strings.TrimRight(s, "\r\n"), "\n")
	for line := range strings.Lines(s) {
		n++
		more, err := parseListLine(line)
		if err != nil && multi {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, more...)
	}
	return out, nil
}

func parseListLine(line string) ([]Hosts, error) {
	if i := strings.IndexByte(line, '#'); i >= 0 {
		line = line[:i]
	}
	var out []Hosts
	for _, f := range strings.FieldsFunc(line, func(r rune) bool {
		return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r'
	}) {
		h, err := ParseHosts(f)
		if err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, nil
}

// Limits of a target list read by ReadHostList. Far beyond any real list,
// they keep a wrong file (/dev/zero, a binary, a log) from filling memory:
// a line is read whole only up to MaxListLine bytes.
const (
	MaxListLine    = 4096     // bytes in one line, comment included
	MaxListLines   = 1 << 22  // lines, blank and comment lines included
	MaxListTargets = 1 << 20  // targets (one CIDR or range counts once)
	MaxListBytes   = 64 << 20 // bytes in all
)

// ErrListTooLong marks a target list past one of its limits.
var ErrListTooLong = errors.New("endpoint: target list past its limits")

// ReadHostList reads a target list in ParseHostList's syntax from r, one
// line at a time, in bounded memory: past MaxListLine, MaxListLines,
// MaxListTargets or MaxListBytes it stops with an error wrapping
// ErrListTooLong that names the line. Syntax errors name their line too.
func ReadHostList(r io.Reader) ([]Hosts, error) {
	cr := &capReader{r: r, left: MaxListBytes}
	sc := bufio.NewScanner(cr)
	sc.Buffer(make([]byte, 0, 512), MaxListLine+1) // +1: the newline
	var out []Hosts
	n := 0
	for sc.Scan() {
		n++
		if n > MaxListLines {
			return nil, fmt.Errorf("%w: more than %d lines; split the list and scan it in parts",
				ErrListTooLong, MaxListLines)
		}
		more, err := parseListLine(sc.Text())
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if len(out)+len(more) > MaxListTargets {
			return nil, fmt.Errorf("%w: line %d: more than %d targets; split the list and scan it in parts",
				ErrListTooLong, n, MaxListTargets)
		}
		out = append(out, more...)
	}
	switch err := sc.Err(); {
	case errors.Is(err, bufio.ErrTooLong):
		return nil, fmt.Errorf("%w: line %d is longer than %d bytes: is it a target list? "+
			"give one or more targets per line (hosts, addresses, CIDRs or ranges)",
			ErrListTooLong, n+1, MaxListLine)
	case errors.Is(err, errListBytes):
		return nil, fmt.Errorf("%w: line %d: more than %d MiB in all; split the list and scan it in parts",
			ErrListTooLong, n+1, MaxListBytes>>20)
	case err != nil:
		return nil, err
	}
	return out, nil
}

var errListBytes = errors.New("endpoint: list too large")

// capReader fails once more than left bytes have been asked of it.
type capReader struct {
	r    io.Reader
	left int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		// Only an input with more to give is too large.
		n, err := c.r.Read(make([]byte, 1))
		if n > 0 {
			return 0, errListBytes
		}
		return 0, err
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}
