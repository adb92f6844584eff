package app

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// StatusSet is a set of HTTP statuses, as ranges; the zero value is empty.
type StatusSet []StatusRange

// StatusRange is the statuses From to To, both included.
type StatusRange struct{ From, To int }

// DefaultStatus is what an empty StatusSet means: a success or a redirect.
var DefaultStatus = StatusSet{{200, 399}}

// ErrStatusSet is wrapped by ParseStatusSet's errors.
var ErrStatusSet = errors.New("invalid status set")

// ParseStatusSet reads a comma-separated list of statuses ("200"), ranges
// ("200-299") and classes ("2xx"): "200,204,3xx".
func ParseStatusSet(s string) (StatusSet, error) {
	var set StatusSet
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		r, err := parseStatusRange(part)
		if err != nil {
			return nil, fmt.Errorf("%w %q: %q %v; write statuses (200), ranges (200-299) or "+
				"classes (2xx), separated by commas", ErrStatusSet, s, part, err)
		}
		set = append(set, r)
	}
	return set, nil
}

func parseStatusRange(s string) (StatusRange, error) {
	if len(s) == 3 && (strings.HasSuffix(s, "xx") || strings.HasSuffix(s, "XX")) {
		c, err := parseStatus(s[:1] + "00")
		return StatusRange{c, c + 99}, err
	}
	from, to, isRange := strings.Cut(s, "-")
	a, err := parseStatus(from)
	if err != nil || !isRange {
		return StatusRange{a, a}, err
	}
	b, err := parseStatus(to)
	if err == nil && b < a {
		err = fmt.Errorf("is a range that ends before it starts")
	}
	return StatusRange{a, b}, err
}

func parseStatus(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || len(s) != 3 || n < 100 || n > 599 {
		return 0, fmt.Errorf("is not an HTTP status (100-599)")
	}
	return n, nil
}

// Contains reports whether code is in the set; an empty set is DefaultStatus.
func (s StatusSet) Contains(code int) bool {
	if len(s) == 0 {
		s = DefaultStatus
	}
	for _, r := range s {
		if code >= r.From && code <= r.To {
			return true
		}
	}
	return false
}

// String writes the set as ParseStatusSet reads it.
func (s StatusSet) String() string {
	if len(s) == 0 {
		s = DefaultStatus
	}
	parts := make([]string, len(s))
	for i, r := range s {
		switch {
		case r.From == r.To:
			parts[i] = strconv.Itoa(r.From)
		case r.From%100 == 0 && r.To == r.From+99:
			parts[i] = strconv.Itoa(r.From/100) + "xx"
		default:
			parts[i] = strconv.Itoa(r.From) + "-" + strconv.Itoa(r.To)
		}
	}
	return strings.Join(parts, ",")
}
