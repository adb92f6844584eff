//go:build !linux && !darwin && !windows

package sockets

import "context"

// List is implemented on Linux, macOS and Windows; elsewhere it returns
// ErrUnsupported.
func List(ctx context.Context, opt Options) (Table, error) {
	return Table{}, ErrUnsupported
}
