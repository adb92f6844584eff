package monitor

import (
	"fmt"
	"slices"
	"strings"
	"time"
	_ "time/tzdata" // windows name IANA zones; a host without zoneinfo must still read them
)

// Window is a maintenance window: while it is active, the alerts of the
// endpoints it covers are held back (they are still probed, and their
// history kept). One-off windows have Start and End; recurring ones have
// At (a wall-clock time in Zone) on Days, lasting For.
type Window struct {
	ID     string `json:"id"`               // the config's name, or the API's id
	Reason string `json:"reason,omitempty"` // what the people should know
	// Endpoints it covers, by name; empty covers every endpoint.
	Endpoints []string `json:"endpoints,omitempty"`
	// One-off: [Start, End).
	Start time.Time `json:"start,omitzero"`
	End   time.Time `json:"end,omitzero"`
	// Recurring: each of Days (every day when empty) at At (minutes after
	// local midnight in Zone), for For. For is elapsed time, not wall-clock
	// time: a 3h window that starts at 01:00 on the night the clocks go
	// forward ends at 05:00, three hours later. A start the clocks skip
	// (02:30 that night) begins when they reach the next hour (03:30).
	Days []time.Weekday `json:"days,omitempty"`
	At   int            `json:"at_minute,omitempty"`
	For  time.Duration  `json:"for_ns,omitempty"`
	Zone *time.Location `json:"-"`
	From WindowSource   `json:"from"`
}

// WindowSource says where a window was defined.
type WindowSource string

const (
	WindowConfig WindowSource = "config"
	WindowAPI    WindowSource = "api"
)

// Recurring reports whether w repeats.
func (w Window) Recurring() bool { return w.For > 0 }

// Covers reports whether w applies to the endpoint named name.
func (w Window) Covers(name string) bool {
	return len(w.Endpoints) == 0 || slices.Contains(w.Endpoints, name)
}

// Active reports whether t falls inside the window.
func (w Window) Active(t time.Time) bool {
	s, _ := w.Current(t)
	return !s.IsZero()
}

// Current returns the occurrence of w that holds t ([start, end)), or zero
// times when none does.
func (w Window) Current(t time.Time) (start, end time.Time) {
	if !w.Recurring() {
		if !t.Before(w.Start) && t.Before(w.End) {
			return w.Start, w.End
		}
		return time.Time{}, time.Time{}
	}
	loc := w.zone()
	lt := t.In(loc)
	// An occurrence that holds t began at most For ago: look at each local
	// day from then to today.
	back := int(w.For/(24*time.Hour)) + 1
	for i := back; i >= 0; i-- {
		y, m, d := lt.Date()
		day := time.Date(y, m, d-i, 12, 0, 0, 0, loc) // noon: never in a DST gap
		if len(w.Days) > 0 && !slices.Contains(w.Days, day.Weekday()) {
			continue
		}
		s := time.Date(day.Year(), day.Month(), day.Day(), w.At/60, w.At%60, 0, 0, loc)
		if e := s.Add(w.For); !t.Before(s) && t.Before(e) {
			return s, e
		}
	}
	return time.Time{}, time.Time{}
}

// Next returns the start of the first occurrence after t (zero when none
// is left), for the dashboard.
func (w Window) Next(t time.Time) time.Time {
	if !w.Recurring() {
		if t.Before(w.Start) {
			return w.Start
		}
		return time.Time{}
	}
	loc := w.zone()
	lt := t.In(loc)
	for i := range 8 {
		y, m, d := lt.Date()
		day := time.Date(y, m, d+i, 12, 0, 0, 0, loc)
		if len(w.Days) > 0 && !slices.Contains(w.Days, day.Weekday()) {
			continue
		}
		if s := time.Date(day.Year(), day.Month(), day.Day(), w.At/60, w.At%60, 0, 0, loc); s.After(t) {
			return s
		}
	}
	return time.Time{}
}

func (w Window) zone() *time.Location {
	if w.Zone == nil {
		return time.UTC
	}
	return w.Zone
}

// String describes w as the config would write it.
func (w Window) String() string {
	who := "every endpoint"
	if len(w.Endpoints) > 0 {
		who = strings.Join(w.Endpoints, ", ")
	}
	if !w.Recurring() {
		return fmt.Sprintf("%s to %s for %s", w.Start.UTC().Format(time.RFC3339), w.End.UTC().Format(time.RFC3339), who)
	}
	days := "every day"
	if len(w.Days) > 0 {
		ds := make([]string, len(w.Days))
		for i, d := range w.Days {
			ds[i] = strings.ToLower(d.String()[:3])
		}
		days = strings.Join(ds, ",")
	}
	return fmt.Sprintf("%s at %02d:%02d %s for %s, for %s", days, w.At/60, w.At%60, w.zone(), shortDuration(w.For), who)
}

// weekdays by the names a config uses.
var weekdays = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// MaxWindow bounds a window's length: a longer one is a mistake (a
// forgotten end), not maintenance.
const MaxWindow = 7 * 24 * time.Hour

// ParseWindowTime reads a window's start or end: RFC 3339, or
// "2006-01-02 15:04" in loc.
func ParseWindowTime(s string, loc *time.Location) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	t, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: want a time such as 2026-03-29T01:00:00+01:00 or \"2026-03-29 01:00\" (in zone)", s)
	}
	return t, nil
}

// CheckWindow says what is wrong with a one-off window made through the
// API, or nil.
func CheckWindow(w Window, now time.Time) error {
	switch {
	case w.Start.IsZero() || w.End.IsZero():
		return fmt.Errorf("a window needs a start and an end")
	case !w.End.After(w.Start):
		return fmt.Errorf("end %s is not after start %s", w.End.Format(time.RFC3339), w.Start.Format(time.RFC3339))
	case w.End.Sub(w.Start) > MaxWindow:
		return fmt.Errorf("%s is longer than %s; split it, or fix its end", shortDuration(w.End.Sub(w.Start)), shortDuration(MaxWindow))
	case !w.End.After(now):
		return fmt.Errorf("it ended at %s, in the past", w.End.UTC().Format(time.RFC3339))
	}
	return nil
}
