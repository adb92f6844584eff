package netlab

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// openTap creates tap device name (no packet information header) in h's
// namespace and returns it open, non-blocking so Close ends a pending Read.
// The device lives as long as the file: closing it deletes the device.
func openTap(h *Host, name string) (*os.File, error) {
	var f *os.File
	err := h.Do(func() error {
		// The tap belongs to the namespace of the thread that opens the
		// device file.
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err != nil {
			return fmt.Errorf("open /dev/net/tun (the kernel needs CONFIG_TUN): %w", err)
		}
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			unix.Close(fd)
			return err
		}
		ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			unix.Close(fd)
			return fmt.Errorf("TUNSETIFF %s in %s: %w", name, h.name, err)
		}
		f = os.NewFile(uintptr(fd), "tap "+name)
		return nil
	})
	return f, err
}
