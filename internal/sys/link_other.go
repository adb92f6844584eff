//go:build !linux

package sys

import "context"

// Links is Linux-only; elsewhere it returns ErrUnsupported.
func Links(ctx context.Context) ([]Link, error) { return nil, ErrUnsupported }

// NetnsIDs is Linux-only; elsewhere it returns ErrUnsupported.
func NetnsIDs(ctx context.Context, nss []*Netns) ([]int, error) { return nil, ErrUnsupported }

// Routes is Linux-only; elsewhere it returns ErrUnsupported.
func Routes(ctx context.Context) ([]Route, error) { return nil, ErrUnsupported }
