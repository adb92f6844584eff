//go:build !linux

package sys

import (
	"fmt"
	"net/netip"
	"syscall"
)

// DialSocket prepares a probe's socket; elsewhere than Linux it can bind a
// source address (net.Dialer does that) but not a device, and reads no ICMP.
type DialSocket struct {
	Device string
	NoPort bool
}

// Control fails when a device is asked for.
func (s *DialSocket) Control(_, _ string, _ syscall.RawConn) error {
	if s.Device != "" {
		return fmt.Errorf("binding to interface %s: %w", s.Device, ErrUnsupported)
	}
	return nil
}

// Reads is false: there is no error queue to read.
func (s *DialSocket) Reads() bool { return false }

// Unreachable finds nothing: the error queue is Linux's.
func (s *DialSocket) Unreachable(uint16) (ExtendedErr, bool) { return ExtendedErr{}, false }

// Connected does nothing.
func (s *DialSocket) Connected(bool) {}

// Close does nothing.
func (s *DialSocket) Close() {}

// TryBind can only refuse a device here; the dial itself checks src.
func TryBind(_ netip.Addr, device string) error {
	if device != "" {
		return fmt.Errorf("binding to interface %s: %w", device, ErrUnsupported)
	}
	return nil
}
