package fault

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// markerPrefix starts every comment reach writes on a fault rule; the
// number is the marker's format version.
const markerPrefix = "reach-fault/1"

// Owner names the process that applied a fault: its pid and its start
// time in clock ticks after boot (/proc/PID/stat), so a pid that was
// reused by another process does not pass for the owner.
type Owner struct {
	PID   int    `json:"pid"`
	Start uint64 `json:"start"`
}

// Marker is what the comment of a fault rule says about it. A fault may
// have several rules (IPv4 and IPv6 in iptables); they share the marker.
type Marker struct {
	ID          string
	Mode        Mode
	Port        uint16
	Expires     time.Time // to the second
	Owner       Owner
	Probability float64 // 0: every SYN
}

// String renders the comment: at most about 100 bytes (nft allows 128).
func (m Marker) String() string {
	s := fmt.Sprintf("%s %s %s port=%d exp=%d own=%d.%d", markerPrefix, m.ID, m.Mode, m.Port,
		m.Expires.Unix(), m.Owner.PID, m.Owner.Start)
	if m.Probability != 0 && m.Probability < 1 {
		s += " p=" + strconv.FormatFloat(m.Probability, 'f', -1, 64)
	}
	return s
}

// ErrNotMarker is returned by ParseMarker for a comment reach did not
// write (another tool's, or none).
var ErrNotMarker = errors.New("fault: not a reach fault marker")

// MarkerError is a comment that starts as reach's marker but does not
// parse: a rule reach did not write whole, or an edited one.
type MarkerError struct {
	Comment string
	Why     string
}

func (e *MarkerError) Error() string {
	return fmt.Sprintf("fault: marker %q: %s", e.Comment, e.Why)
}

// ParseMarker reads a rule comment written by Marker.String. A comment
// that is not reach's gives ErrNotMarker; one that is but is damaged, a
// *MarkerError.
func ParseMarker(comment string) (Marker, error) {
	f := strings.Fields(comment)
	if len(f) == 0 || f[0] != markerPrefix {
		return Marker{}, ErrNotMarker
	}
	bad := func(why string) (Marker, error) { return Marker{}, &MarkerError{comment, why} }
	if len(f) < 6 {
		return bad("too few fields")
	}
	m := Marker{ID: f[1], Mode: Mode(f[2])}
	if !validID(m.ID) {
		return bad("bad id")
	}
	switch m.Mode {
	case Refuse, Drop, RejectICMP:
	default:
		return bad("unknown mode")
	}
	seen := map[string]bool{}
	for _, kv := range f[3:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || seen[k] {
			return bad("bad field " + strconv.Quote(kv))
		}
		seen[k] = true
		switch k {
		case "port":
			n, err := strconv.ParseUint(v, 10, 16)
			if err != nil || n == 0 {
				return bad("bad port")
			}
			m.Port = uint16(n)
		case "exp":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 || n > 1<<40 {
				return bad("bad expiry")
			}
			m.Expires = time.Unix(n, 0)
		case "own":
			pid, start, ok := strings.Cut(v, ".")
			p, err1 := strconv.Atoi(pid)
			s, err2 := strconv.ParseUint(start, 10, 64)
			if !ok || err1 != nil || err2 != nil || p <= 0 {
				return bad("bad owner")
			}
			m.Owner = Owner{p, s}
		case "p":
			p, err := strconv.ParseFloat(v, 64)
			if err != nil || !(p > 0 && p < 1) {
				return bad("bad probability")
			}
			m.Probability = p
		default:
			return bad("unknown field " + strconv.Quote(k))
		}
	}
	if !seen["port"] || !seen["exp"] || !seen["own"] {
		return bad("port, exp and own are required")
	}
	return m, nil
}

// validID holds for the ids newID makes: 8 lowercase hex digits.
func validID(s string) bool {
	if len(s) != 8 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
