package testnet

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"
)

// Held is what a held connection saw.
type Held struct {
	Reply  string        // what the server sent
	Closed bool          // whether the server closed the connection in time
	After  time.Duration // from the last byte sent to the close (or to giving up)
}

// Hold plays a slow client: it connects to addr (from the loopback address
// from, when valid: 127.0.0.2 and the like, so a server tells clients
// apart), sends send and then nothing more, and reads until the server
// closes the connection or within has passed.
func Hold(t testing.TB, from netip.Addr, addr, send string, within time.Duration) Held {
	t.Helper()
	d := net.Dialer{Timeout: within}
	if from.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: from.AsSlice()}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("testnet: dial %s: %v", addr, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(send)); err != nil {
		t.Fatalf("testnet: write to %s: %v", addr, err)
	}
	start := time.Now()
	c.SetReadDeadline(start.Add(within))
	var h Held
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		h.Reply += string(buf[:n])
		if err != nil {
			h.After = time.Since(start)
			h.Closed = !errors.Is(err, os.ErrDeadlineExceeded)
			return h
		}
	}
}
