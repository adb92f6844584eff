//go:build !linux

package sys

import "context"

// NetlinkDump is Linux-only; elsewhere it returns ErrUnsupported.
func NetlinkDump(ctx context.Context, proto int, typ uint16, payload []byte,
	fn func(NetlinkMessage) error) error {
	return ErrUnsupported
}
