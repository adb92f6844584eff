package sys

import (
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Poller waits for connects in progress on many non-blocking sockets to
// finish (epoll). It is not safe for concurrent use.
type Poller struct {
	fd     int
	events []unix.EpollEvent
	ready  []Ready
}

// Ready is a socket whose connect finished one way or another.
type Ready struct {
	FD  int
	Err bool // an error is pending (EPOLLERR), perhaps one queued by IP_RECVERR
}

// NewPoller returns a Poller that reports up to batch sockets per Wait.
func NewPoller(batch int) (*Poller, syscall.Errno) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, errnoOf(err)
	}
	return &Poller{fd: fd, events: make([]unix.EpollEvent, batch), ready: make([]Ready, 0, batch)}, 0
}

// Add watches fd until it is closed (closing removes it).
func (p *Poller) Add(fd int) syscall.Errno {
	ev := unix.EpollEvent{Events: unix.EPOLLOUT, Fd: int32(fd)}
	return errnoOf(unix.EpollCtl(p.fd, unix.EPOLL_CTL_ADD, fd, &ev))
}

// Wait waits up to timeout (rounded up to a millisecond; 0 does not wait)
// and returns the sockets ready, in a slice the next Wait reuses. A signal
// ends the wait early with none.
func (p *Poller) Wait(timeout time.Duration) ([]Ready, error) {
	ms := (timeout + time.Millisecond - 1) / time.Millisecond
	n, err := unix.EpollWait(p.fd, p.events, int(ms))
	p.ready = p.ready[:0]
	if err == unix.EINTR {
		return p.ready, nil
	}
	if err != nil {
		return p.ready, err
	}
	for _, ev := range p.events[:n] {
		p.ready = append(p.ready, Ready{FD: int(ev.Fd), Err: ev.Events&unix.EPOLLERR != 0})
	}
	return p.ready, nil
}

// Close releases the poller.
func (p *Poller) Close() { unix.Close(p.fd) }
