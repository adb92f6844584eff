// Package bounded reads what users name — a config file, a token file, a
// certificate, standard input — with a limit. A path that turns out to be
// /dev/zero, a FIFO that never ends or a file far larger than its kind ever
// is ends in a *TooLargeError after reading at most limit+1 bytes, never in
// exhausted memory: os.ReadFile and io.ReadAll read until the end, however
// far it is.
package bounded

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrTooLarge is what every *TooLargeError unwraps to.
var ErrTooLarge = errors.New("bounded: input larger than its limit")

// TooLargeError says an input went past its limit, and what it was read as.
type TooLargeError struct {
	Name  string // the file's path, or "standard input"
	What  string // what it was read as, e.g. "config file"
	Limit int64  // bytes
	Size  int64  // the file's size when known before reading (a regular file), else 0
}

func (e *TooLargeError) Error() string {
	size := "more than " + Size(e.Limit)
	if e.Size > 0 {
		size = fmt.Sprintf("%d bytes", e.Size)
	}
	return fmt.Sprintf("%s %s holds %s; the limit for a %s is %s: is it the right file?",
		e.What, e.Name, size, e.What, Size(e.Limit))
}

func (e *TooLargeError) Unwrap() error { return ErrTooLarge }

// ReadFile reads the file at path, what it is read as naming it in errors.
// A regular file larger than limit is refused before reading; anything else
// (a device, a FIFO, a file growing as it is read) is read up to limit+1
// bytes.
func ReadFile(path, what string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() > limit {
		return nil, &TooLargeError{Name: path, What: what, Limit: limit, Size: fi.Size()}
	}
	return Read(f, path, what, limit)
}

// Read reads r to its end, or fails with a *TooLargeError as soon as it has
// read more than limit bytes.
func Read(r io.Reader, name, what string, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, &TooLargeError{Name: name, What: what, Limit: limit}
	}
	return b, nil
}

// Size writes a byte count for people: "4 MiB", "4 KiB", "100 bytes".
func Size(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d bytes", n)
}
