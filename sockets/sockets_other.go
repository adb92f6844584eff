//go:build !linux

package sockets

import "context"

// List is implemented on Linux only; elsewhere it returns ErrUnsupported.
func List(ctx context.Context, opt Options) (Table, error) {
	return Table{}, ErrUnsupported
}
