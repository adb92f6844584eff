package agent

import "sync"

// buffer holds results until the hub has them. It is bounded: when full, the
// oldest result is dropped and counted, so a long hub outage costs old
// history, never memory or fresh results.
type buffer struct {
	mu      sync.Mutex
	max     int
	items   []Result
	first   uint64 // sequence number of items[0]
	dropped uint64
}

// newBuffer numbers results from 1: 0 is "no sequence number" on the wire.
func newBuffer(max int) *buffer { return &buffer{max: max, first: 1} }

// push appends r and reports how many results were dropped to make room.
func (b *buffer) push(r Result) (dropped int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.items = append(b.items, r)
	for len(b.items) > b.max {
		b.items[0] = Result{} // let the strings go
		b.items = b.items[1:]
		b.first++
		b.dropped++
		dropped++
	}
	return dropped
}

// peek returns up to n of the oldest results and the sequence number of
// the first; a result keeps its number until it is acknowledged or
// dropped, so a resend carries the same ones.
func (b *buffer) peek(n int) ([]Result, uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n = min(n, len(b.items))
	return append([]Result(nil), b.items[:n]...), b.first
}

// ack removes results before sequence number end. Results dropped while
// they were being sent are already gone, which ack allows for.
func (b *buffer) ack(end uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if end <= b.first {
		return
	}
	n := min(int(end-b.first), len(b.items))
	clear(b.items[:n])
	b.items = b.items[n:]
	b.first += uint64(n)
}

// next returns the sequence number the next result pushed will get.
func (b *buffer) next() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.first + uint64(len(b.items))
}

// stats returns how many results wait and how many were dropped in total.
func (b *buffer) stats() (pending int, dropped uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.items), b.dropped
}
