//go:build !linux

package sys

import (
	"context"
	"errors"
)

// ErrNoFirewallEvents means the nf_tables notifications could not be joined.
var ErrNoFirewallEvents = errors.New("sys: cannot watch nf_tables changes")

// SubscribeNet is Linux-only; elsewhere it returns ErrUnsupported.
func SubscribeNet(ctx context.Context, fn func(NetEvent), warn func(error)) error {
	return ErrUnsupported
}
