package doctor

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// TextOptions tune WriteText.
type TextOptions struct {
	Color bool // ANSI colour (only on a terminal, never with NO_COLOR)
	Width int  // total width of the findings table; zero means 120
}

var marks = map[Status]string{Pass: "✓", Fail: "✗", Info: "·", Skip: "-", Error: "!"}

// WriteText renders the report for people: the verdict line, the ladder of
// checks walked, then the Issue / Evidence / Fix table.
func (r *Report) WriteText(w io.Writer, opt TextOptions) error {
	paint := func(code, s string) string {
		if !opt.Color {
			return s
		}
		return "\x1b[" + code + "m" + s + "\x1b[0m"
	}
	var b strings.Builder
	mark, code := "✗", "31"
	if r.Reachable {
		mark, code = "✓", "32"
		if r.Cause != Reachable {
			code = "33"
		}
	}
	b.WriteString(paint(code+";1", mark+" "+r.Verdict) + "\n\n")
	if v := r.Vantage; v != nil {
		b.WriteString("From " + v.String() + ";\n  " + v.DNS + "\n\n")
	}
	var paths []string
	for _, a := range r.Addresses {
		for _, p := range a.Paths {
			if len(p.Hops) > 0 {
				paths = append(paths, p.Text)
			}
		}
	}
	if len(paths) > 0 {
		b.WriteString("Where the connection goes:\n")
		for _, p := range paths {
			b.WriteString("  " + p + "\n")
		}
		b.WriteString("\n")
	}

	b.WriteString("Checks walked:\n")
	nameW := 0
	for _, c := range r.Checks {
		nameW = max(nameW, len(c.Name))
	}
	for _, c := range r.Checks {
		m := marks[c.Status]
		switch c.Status {
		case Fail, Error:
			m = paint("31", m)
		case Pass:
			m = paint("32", m)
		}
		fmt.Fprintf(&b, "  %s %-*s %8s  %s\n", m, nameW, c.Name, fmt.Sprintf("%.1fms", c.DurationMS), c.Detail)
	}

	if len(r.Findings) > 0 {
		width := opt.Width
		if width <= 0 {
			width = 120
		}
		cols := []int{width * 24 / 100, width * 42 / 100, width * 34 / 100}
		b.WriteString("\n")
		row := func(cells ...string) {
			wrapped := make([][]string, len(cells))
			lines := 0
			for i, c := range cells {
				wrapped[i] = wrap(c, cols[i]-2)
				lines = max(lines, len(wrapped[i]))
			}
			for l := range lines {
				var line strings.Builder
				for i := range cells {
					s := ""
					if l < len(wrapped[i]) {
						s = wrapped[i][l]
					}
					if i < len(cells)-1 {
						fmt.Fprintf(&line, "%-*s", cols[i], s)
					} else {
						line.WriteString(s)
					}
				}
				b.WriteString(strings.TrimRight(line.String(), " ") + "\n")
			}
		}
		b.WriteString(paint("1", fmt.Sprintf("%-*s%-*s%s", cols[0], "Issue", cols[1], "Evidence", "Fix")) + "\n")
		for _, f := range r.Findings {
			issue := f.Issue + " [" + string(f.Cause) + ", " + string(f.Confidence) + "]"
			if f.Addr != "" { // the target has several addresses: say which
				issue = f.Addr + ": " + issue
			}
			row(issue, f.Evidence, f.Fix)
		}
	}
	if len(r.Next) > 0 {
		b.WriteString("\nTo tell these apart:\n")
		for _, n := range r.Next {
			b.WriteString("  - " + n + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// wrap breaks s into lines of at most width runes, at spaces where it can.
func wrap(s string, width int) []string {
	if width < 8 {
		width = 8
	}
	var lines []string
	var cur []rune
	for _, word := range strings.Fields(s) {
		wr := []rune(word)
		for len(wr) > width { // a word longer than the column
			if len(cur) > 0 {
				lines, cur = append(lines, string(cur)), nil
			}
			lines, wr = append(lines, string(wr[:width])), wr[width:]
		}
		if len(cur) > 0 && len(cur)+1+len(wr) > width {
			lines, cur = append(lines, string(cur)), nil
		}
		if len(cur) > 0 {
			cur = append(cur, ' ')
		}
		cur = append(cur, wr...)
	}
	if len(cur) > 0 {
		lines = append(lines, string(cur))
	}
	return lines
}

// round shortens a duration for details: 0.12ms, 3.4ms, 1.25s.
func round(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000)
	case d < time.Second:
		return d.Round(100 * time.Microsecond).String()
	}
	return d.Round(10 * time.Millisecond).String()
}

// count says "1 thing" or "n things".
func count(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}
