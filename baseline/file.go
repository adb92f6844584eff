package baseline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"

	"github.com/reach-tools/reach/doctor"
	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/internal/bounded"
	"github.com/reach-tools/reach/probe"
)

// Limits of what Read accepts: an entry takes 100 to 200 bytes, so 400,000
// pairs (a fleet of 200 hosts probing each other on 10 ports) fit in 64 MiB;
// anything larger is not a baseline reach wrote.
const (
	MaxFileSize = 64 << 20
	MaxEntries  = 400_000
)

// Errors Read and Write wrap; a *FileError carries the path.
var (
	// ErrExists: Write was asked not to overwrite, and the file exists.
	ErrExists = errors.New("baseline: file exists")
	// ErrFormat: the file is not a baseline reach can read.
	ErrFormat = errors.New("baseline: not a baseline file")
	// ErrTooLarge: the file is larger than MaxFileSize.
	ErrTooLarge = errors.New("baseline: file too large")
)

// FileError says which file could not be read or written, and why.
type FileError struct {
	Path string
	Op   string // "read" or "write"
	Err  error
}

func (e *FileError) Error() string {
	switch {
	case errors.Is(e.Err, ErrExists):
		return fmt.Sprintf("%s exists; give --force to replace it, or another path", e.Path)
	case errors.Is(e.Err, ErrFormat), errors.Is(e.Err, ErrTooLarge):
		return fmt.Sprintf("%s: %v; give a file written by reach baseline save", e.Path, e.Err)
	}
	return fmt.Sprintf("cannot %s baseline %s: %v", e.Op, e.Path, e.Err)
}

func (e *FileError) Unwrap() error { return e.Err }

// formatErr wraps ErrFormat with where in the file the problem is.
func formatErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrFormat, fmt.Sprintf(format, args...))
}

// Encode writes f as indented JSON, entries one per line so a diff of two
// files by hand stays readable.
func (f *File) Encode(w io.Writer) error {
	var b bytes.Buffer
	head := *f
	head.Entries = nil
	h, err := json.MarshalIndent(head, "", "  ")
	if err != nil {
		return err
	}
	// Replace the empty list with one entry per line.
	h = bytes.TrimSuffix(h, []byte("\"entries\": null\n}"))
	b.Write(h)
	b.WriteString("\"entries\": [")
	for i, e := range f.Entries {
		line, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("\n    ")
		b.Write(line)
	}
	b.WriteString("\n  ]\n}\n")
	_, err = w.Write(b.Bytes())
	return err
}

// Write saves f at path atomically: into a temporary file beside it, synced,
// then linked (or, with force, renamed) into place, so a reader sees the old
// file or the new one, never half of one. Without force an existing path is
// ErrExists and is left alone.
func Write(path string, f *File, force bool) error {
	wrap := func(err error) error { return &FileError{Path: path, Op: "write", Err: err} }
	if !force {
		if _, err := os.Lstat(path); err == nil {
			return wrap(ErrExists)
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return wrap(err)
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	if err := f.Encode(tmp); err != nil {
		return wrap(err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return wrap(err)
	}
	if err := tmp.Sync(); err != nil {
		return wrap(err)
	}
	if err := tmp.Close(); err != nil {
		return wrap(err)
	}
	if force {
		if err := os.Rename(tmp.Name(), path); err != nil {
			return wrap(err)
		}
		return nil
	}
	// link refuses to replace a file that appeared since the check above.
	err = os.Link(tmp.Name(), path)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, os.ErrExist):
		return wrap(ErrExists)
	}
	// A file system without hard links: check again, then rename (a file
	// created in between would be replaced).
	if _, err := os.Lstat(path); err == nil {
		return wrap(ErrExists)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return wrap(err)
	}
	return nil
}

// Read reads and checks the baseline at path, reading at most MaxFileSize
// bytes whatever the path is (a device, a FIFO).
func Read(path string) (*File, error) {
	data, err := readLimited(path, MaxFileSize)
	if err == nil {
		var f *File
		if f, err = Parse(data); err == nil {
			return f, nil
		}
	}
	return nil, &FileError{Path: path, Op: "read", Err: err}
}

// readLimited reads path up to limit bytes (internal/bounded): a regular
// file larger than that is refused before reading, anything else when it
// goes past it.
func readLimited(path string, limit int64) ([]byte, error) {
	data, err := bounded.ReadFile(path, "baseline file", limit)
	if errors.Is(err, bounded.ErrTooLarge) {
		return nil, fmt.Errorf("%w: %w", ErrTooLarge, err)
	}
	return data, err
}

// Parse decodes and checks a baseline: the schema, and every entry's
// source, target, class and times, so Diff never probes what a hand-edited
// file made up. Unknown fields are refused: a typo must not drop a value.
func Parse(data []byte) (*File, error) {
	var probeSchema struct {
		Schema *string `json:"schema"`
	}
	if err := json.Unmarshal(data, &probeSchema); err != nil {
		return nil, formatErr("%v", jsonError(data, err))
	}
	switch {
	case probeSchema.Schema == nil:
		return nil, formatErr(`no "schema" field (want %q)`, Schema)
	case *probeSchema.Schema != Schema:
		return nil, formatErr(`schema %q; this reach reads %q`, *probeSchema.Schema, Schema)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f File
	if err := dec.Decode(&f); err != nil {
		return nil, formatErr("%v", jsonError(data, err))
	}
	if err := f.check(); err != nil {
		return nil, err
	}
	return &f, nil
}

// jsonError adds the line to a syntax error's byte offset.
func jsonError(data []byte, err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) && se.Offset <= int64(len(data)) {
		return fmt.Errorf("line %d: %w", bytes.Count(data[:se.Offset], []byte("\n"))+1, err)
	}
	return err
}

// classes are the classes a probe returns (Canceled is never saved: a
// cancelled Save saves nothing).
var classes = []probe.Class{probe.Open, probe.Refused, probe.Timeout, probe.HostUnreachable,
	probe.NetUnreachable, probe.DNS, probe.Reset, probe.ClosedByPeer, probe.LocalError}

func (f *File) check() error {
	switch {
	case len(f.Entries) == 0:
		return formatErr("no entries")
	case len(f.Entries) > MaxEntries:
		return formatErr("%d entries, more than %d", len(f.Entries), MaxEntries)
	case !finite(f.TimeoutMS) || f.TimeoutMS <= 0 || f.TimeoutMS > maxTimeoutMS:
		return formatErr("timeout_ms %v: want a positive number of milliseconds, at most %v", f.TimeoutMS, maxTimeoutMS)
	case f.Undiagnosed < 0 || f.Undiagnosed > len(f.Entries):
		return formatErr("undiagnosed %d: want 0 to the number of entries", f.Undiagnosed)
	case !finite(f.DurationMS) || f.DurationMS < 0:
		return formatErr("duration_ms %v: want zero or more", f.DurationMS)
	}
	if f.Hub != "" {
		if u, err := url.Parse(f.Hub); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			redact(f.Hub) != f.Hub {
			return formatErr("hub %q: want the hub's base URL, such as http://hub:9190", f.Hub)
		}
	}
	seen := make(map[string]bool, len(f.Entries))
	for i, e := range f.Entries {
		if err := e.check(); err != nil {
			return formatErr("entries[%d]: %v", i, err)
		}
		if e.Source != LocalSource && f.Hub == "" {
			return formatErr("entries[%d]: source %q is an agent, and the file names no hub", i, e.Source)
		}
		if seen[e.key()] {
			return formatErr("entries[%d]: %s is listed twice", i, e.Target.String())
		}
		seen[e.key()] = true
	}
	return nil
}

// maxTimeoutMS is an hour: no probe waits longer.
const maxTimeoutMS = 3_600_000

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func (e Entry) check() error {
	if e.Source != LocalSource && !endpoint.ValidName(e.Source) {
		return fmt.Errorf("source %q: want %q or an agent's name", e.Source, LocalSource)
	}
	if e.Name != "" && !endpoint.ValidName(e.Name) {
		return fmt.Errorf("name %q: want 1-64 letters, digits, '.', '_' or '-'", e.Name)
	}
	if _, err := endpoint.ParseEndpoint(e.Target.Target, 0); err != nil {
		return fmt.Errorf("target: %w", err)
	}
	if e.SourceAddr != "" {
		if _, err := netip.ParseAddr(e.SourceAddr); err != nil {
			return fmt.Errorf("source_addr: %w", err)
		}
	}
	if len(e.Interface) > 15 {
		return fmt.Errorf("interface %q: longer than an interface name (15)", e.Interface)
	}
	if e.Addr != "" {
		if _, err := netip.ParseAddrPort(e.Addr); err != nil {
			return fmt.Errorf("addr: %w", err)
		}
	}
	if !slices.Contains(classes, e.Class) {
		return fmt.Errorf("class %q: want one of %v", e.Class, classes)
	}
	if len(e.Cause) > 64 || !validCause(e.Cause) {
		return fmt.Errorf("cause %q: want a cause id such as %q", e.Cause, doctor.FirewallDrop)
	}
	if !finite(e.ConnectMS) || e.ConnectMS < 0 || e.ConnectMS > maxTimeoutMS {
		return fmt.Errorf("connect_ms %v: want 0 to %v", e.ConnectMS, maxTimeoutMS)
	}
	if !finite(e.TimeoutMS) || e.TimeoutMS < 0 || e.TimeoutMS > maxTimeoutMS {
		return fmt.Errorf("timeout_ms %v: want 0 to %v", e.TimeoutMS, maxTimeoutMS)
	}
	return nil
}

// validCause accepts cause ids as the doctor writes them (lower-case words
// joined by '-'): a later reach may name causes this one does not know.
func validCause(c doctor.Cause) bool {
	for i := range len(c) {
		b := c[i]
		if !(b >= 'a' && b <= 'z' || b == '-' && i > 0) {
			return false
		}
	}
	return true
}
