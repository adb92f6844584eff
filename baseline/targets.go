package baseline

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/monitor"
)

// Limits of ReadTargets: a line of a list is never longer than a few
// targets, and a set is at most MaxEntries.
const maxLineBytes = 4096

// ErrList marks a target list that cannot be read as one.
var ErrList = errors.New("baseline: bad target list")

// ParseTargets makes targets of what a user typed: host:port each, probed
// from this host.
func ParseTargets(args []string) ([]Target, error) {
	ts := make([]Target, 0, len(args))
	for _, a := range args {
		ep, err := endpoint.ParseEndpoint(a, 0)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrTarget, err)
		}
		ts = append(ts, Target{Source: LocalSource, Target: ep.String()})
	}
	return ts, nil
}

// ReadTargets reads a target list (reach scan's -iL, with ports): host:port
// targets separated by white space or commas, '#' starting a comment to the
// end of the line. Lines longer than 4096 bytes and lists of more than
// MaxEntries targets are refused with the line, without reading further.
func ReadTargets(r io.Reader) ([]Target, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 512), maxLineBytes)
	var ts []Target
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		for _, f := range strings.FieldsFunc(line, func(r rune) bool {
			return r == ',' || r == ' ' || r == '\t' || r == '\r'
		}) {
			ep, err := endpoint.ParseEndpoint(f, 0)
			if err != nil {
				return nil, fmt.Errorf("%w: line %d: %w", ErrList, n, err)
			}
			if len(ts) == MaxEntries {
				return nil, fmt.Errorf("%w: line %d: more than %d targets", ErrList, n, MaxEntries)
			}
			ts = append(ts, Target{Source: LocalSource, Target: ep.String()})
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("%w: line %d: longer than %d bytes", ErrList, n+1, maxLineBytes)
		}
		return nil, fmt.Errorf("%w: %w", ErrList, err)
	}
	return ts, nil
}

// FromWatchConfig makes targets of a reach watch config's endpoints, with
// their names, timeouts and where they leave from. The agents: section is
// not read: its pairs are probed by the agents, from their hosts.
func FromWatchConfig(cfg *monitor.Config) []Target {
	ts := make([]Target, 0, len(cfg.Endpoints))
	for _, e := range cfg.Endpoints {
		t := Target{Source: LocalSource, Name: e.Name, Target: e.Target.String(), Interface: e.Interface,
			TimeoutMS: ms(e.Timeout)}
		if e.Source.IsValid() {
			t.SourceAddr = e.Source.String()
		}
		ts = append(ts, t)
	}
	return ts
}
