package netlab

import (
	"errors"
	"io"
	"os"
	"sync"
	"time"
)

// delay is a user-space wire between two tap devices: hostTap in host (the
// host's interface) and swTap in sw (a bridge port). Frames the host sends
// reach the bridge d later, in order; frames to the host pass at once.
type delay struct {
	host, sw       *Host
	hostTap, swTap *os.File
	d              time.Duration
	once           sync.Once
	done           chan struct{}
	wg             sync.WaitGroup
}

// maxQueued is how many delayed frames a line holds; more are dropped, as a
// full queue of a real link drops them.
const maxQueued = 4096

// frame is one delayed frame and when it is due.
type frame struct {
	due  time.Time
	data []byte
}

// delayLine makes tap ifname in h and tap port in sw and runs a delay line
// of d between them until the lab's cleanup (or h's or sw's Delete).
func (l *Lab) delayLine(h *Host, ifname string, sw *Host, port string, d time.Duration) {
	l.t.Helper()
	hostTap, err := openTap(h, ifname)
	if err != nil {
		l.t.Fatalf("netlab: delay line for %s: %v", h.name, err)
	}
	swTap, err := openTap(sw, port)
	if err != nil {
		hostTap.Close()
		l.t.Fatalf("netlab: delay line for %s: %v", h.name, err)
	}
	line := &delay{host: h, sw: sw, hostTap: hostTap, swTap: swTap, d: d, done: make(chan struct{})}
	l.mu.Lock()
	l.lines = append(l.lines, line)
	l.mu.Unlock()
	queue := make(chan frame, maxQueued)
	line.wg.Add(3)
	go func() { // host -> queue
		defer line.wg.Done()
		defer close(queue)
		buf := make([]byte, 65536)
		for {
			n, err := hostTap.Read(buf)
			if err != nil {
				return
			}
			f := frame{due: time.Now().Add(d), data: append([]byte(nil), buf[:n]...)}
			select {
			case queue <- f:
			default: // full: dropped
			}
		}
	}()
	go func() { // queue -> bridge, each frame when it is due
		defer line.wg.Done()
		t := time.NewTimer(0)
		defer t.Stop()
		for f := range queue {
			if wait := time.Until(f.due); wait > 0 {
				t.Reset(wait)
				select {
				case <-t.C:
				case <-line.done:
					return
				}
			}
			if _, err := swTap.Write(f.data); err != nil && errors.Is(err, os.ErrClosed) {
				return
			}
		}
	}()
	go func() { // bridge -> host, at once
		defer line.wg.Done()
		_, _ = io.Copy(packetWriter{hostTap}, packetReader{swTap})
	}()
}

// stop closes both taps (which deletes them) and waits for the line's
// goroutines.
func (line *delay) stop() {
	line.once.Do(func() {
		close(line.done)
		line.hostTap.Close()
		line.swTap.Close()
		line.wg.Wait()
	})
}

// packetReader and packetWriter keep io.Copy to one frame per Read and
// Write: without them it would use ReadFrom/WriteTo of *os.File, which may
// splice.
type packetReader struct{ f *os.File }

func (r packetReader) Read(b []byte) (int, error) { return r.f.Read(b) }

type packetWriter struct{ f *os.File }

func (w packetWriter) Write(b []byte) (int, error) {
	n, err := w.f.Write(b)
	if err != nil && !errors.Is(err, os.ErrClosed) {
		return len(b), nil // a frame the host's tap refused is lost, as on a wire
	}
	return n, err
}
