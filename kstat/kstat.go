// Package kstat reads the kernel's own network counters of one network
// namespace: TCP listen-queue overflows and drops, SYN cookies, every other
// counter of /proc/net/netstat and /proc/net/snmp, the conntrack table's fill
// and drops, and the ephemeral port range. A Snapshot is taken before and
// after something happens, and Diff says what the kernel counted meanwhile:
// "the kernel dropped 12 SYNs to a full accept queue" is Diff's
// Counters[ListenOverflows].
//
// It is its own package, not part of sockets: these are counters of a
// namespace, not sockets, and they are read as deltas over time, which the
// socket list is not. Every file is per network namespace; Read reads the
// calling thread's, ReadNamespace enters another one.
package kstat

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// ErrUnsupported is returned on operating systems without these counters.
var ErrUnsupported = errors.New("kstat: unsupported on this OS")

// ErrOtherNamespace means Diff was given snapshots of two namespaces.
var ErrOtherNamespace = errors.New("kstat: snapshots of different network namespaces")

// Keys of Snapshot.Counters the doctor reads; every counter of
// /proc/net/netstat and /proc/net/snmp is there, as "Group.Name".
const (
	// ListenOverflows counts SYNs (and handshake ACKs) dropped because a
	// listener's accept queue was full: the application accepts too slowly.
	ListenOverflows = "TcpExt.ListenOverflows"
	// ListenDrops counts every SYN a listener dropped, overflows included.
	ListenDrops = "TcpExt.ListenDrops"
	// SyncookiesSent counts SYN cookies sent because a SYN queue was full
	// (or net.ipv4.tcp_syncookies is 2).
	SyncookiesSent   = "TcpExt.SyncookiesSent"
	SyncookiesRecv   = "TcpExt.SyncookiesRecv"
	SyncookiesFailed = "TcpExt.SyncookiesFailed"
	// AttemptFails counts connections this namespace opened that failed.
	AttemptFails = "Tcp.AttemptFails"
	// OutRsts counts resets sent (refused connections among them).
	OutRsts = "Tcp.OutRsts"
)

// Keys of Conntrack.Stats (columns of /proc/net/stat/nf_conntrack) that mean
// a full table.
const (
	// ConntrackDrop counts packets dropped because the table was full and
	// no entry could be evicted: new connections fail.
	ConntrackDrop = "drop"
	// ConntrackEarlyDrop counts entries evicted to make room for new ones.
	ConntrackEarlyDrop = "early_drop"
	// ConntrackInsertFailed counts entries that could not be inserted
	// (clashes; also when the table is full).
	ConntrackInsertFailed = "insert_failed"
)

// Snapshot is the counters of one network namespace at one time.
type Snapshot struct {
	Time time.Time `json:"time"`
	// Netns is the inode of the namespace read (0 when unknown).
	Netns uint64 `json:"netns"`
	// Counters are the counters of /proc/net/netstat and /proc/net/snmp,
	// keyed "Group.Name" (ListenOverflows and the other constants).
	// Values are as the kernel prints them; above 2^63 they wrap, which
	// Diff's subtraction undoes.
	Counters map[string]int64 `json:"counters"`
	// Conntrack is the connection tracking table; nil when nf_conntrack is
	// not loaded (Missing says so).
	Conntrack *Conntrack `json:"conntrack,omitempty"`
	// PortRange is net.ipv4.ip_local_port_range: the ephemeral ports
	// connections from this namespace pick their source port from.
	PortRange PortRange `json:"port_range"`
	// Missing lists what could not be read, and why.
	Missing []Missing `json:"missing,omitempty"`
}

// Conntrack is the state of the connection tracking table.
type Conntrack struct {
	Count int64 `json:"count"` // entries now (nf_conntrack_count)
	Max   int64 `json:"max"`   // the table's size (nf_conntrack_max)
	// Stats are the columns of /proc/net/stat/nf_conntrack summed over
	// CPUs ("drop", "early_drop", "insert_failed", ...; they vary with the
	// kernel); nil when that file could not be read ("entries" is left
	// out: it is Count).
	Stats map[string]int64 `json:"stats,omitempty"`
}

// Full reports whether the table has no room left: new connections are
// dropped unless an old entry can be evicted.
func (c *Conntrack) Full() bool { return c != nil && c.Max > 0 && c.Count >= c.Max }

// PortRange is a range of ports, both ends included.
type PortRange struct {
	Low  uint16 `json:"low"`
	High uint16 `json:"high"`
}

// Size is the number of ports in the range.
func (p PortRange) Size() int {
	if p.High < p.Low {
		return 0
	}
	return int(p.High) - int(p.Low) + 1
}

func (p PortRange) String() string { return fmt.Sprintf("%d-%d", p.Low, p.High) }

// MissingReason says why a counter could not be read.
type MissingReason string

const (
	// MissingAbsent: the file does not exist; for conntrack, the
	// nf_conntrack module is not loaded (nothing is tracked, nothing can
	// fill up).
	MissingAbsent MissingReason = "absent"
	// MissingPermission: the file exists but may not be read.
	MissingPermission MissingReason = "permission"
	// MissingError: it could not be read or parsed; Err says what.
	MissingError MissingReason = "error"
)

// Missing is one thing a Snapshot could not read.
type Missing struct {
	What   string        `json:"what"` // "conntrack", "conntrack stats", a file name
	Reason MissingReason `json:"reason"`
	Err    error         `json:"-"`
	Error  string        `json:"error"`
}

func missing(what string, err error) Missing {
	r := MissingError
	switch {
	case errors.Is(err, fs.ErrNotExist):
		r = MissingAbsent
	case errors.Is(err, fs.ErrPermission):
		r = MissingPermission
	}
	return Missing{What: what, Reason: r, Err: err, Error: err.Error()}
}

// Delta is what the kernel counted between two snapshots of a namespace.
type Delta struct {
	Netns    uint64        `json:"netns"`
	Interval time.Duration `json:"interval"`
	// Counters are after minus before, for every counter in both.
	Counters map[string]int64 `json:"counters"`
	// Conntrack is the table after, with Stats as after minus before; nil
	// when either snapshot has none.
	Conntrack *Conntrack `json:"conntrack,omitempty"`
	// PortRange is the range after.
	PortRange PortRange `json:"port_range"`
}

// Diff returns what changed from before to after, two snapshots of the same
// namespace. A counter that went down (the namespace was made anew under the
// same inode, which the kernel does not do, or a counter that wrapped) gives
// after minus before modulo 2^64.
func Diff(before, after Snapshot) (Delta, error) {
	if before.Netns != after.Netns {
		return Delta{}, fmt.Errorf("%w: %d and %d", ErrOtherNamespace, before.Netns, after.Netns)
	}
	d := Delta{
		Netns:     after.Netns,
		Interval:  after.Time.Sub(before.Time),
		Counters:  subtract(after.Counters, before.Counters),
		PortRange: after.PortRange,
	}
	if before.Conntrack != nil && after.Conntrack != nil {
		c := *after.Conntrack
		if before.Conntrack.Stats != nil && c.Stats != nil {
			c.Stats = subtract(c.Stats, before.Conntrack.Stats)
		} else {
			c.Stats = nil
		}
		d.Conntrack = &c
	}
	return d, nil
}

func subtract(after, before map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(after))
	for k, a := range after {
		if b, ok := before[k]; ok {
			out[k] = int64(uint64(a) - uint64(b))
		}
	}
	return out
}

// read takes a snapshot from the files under procRoot (normally /proc),
// through thread-self so a thread inside another namespace reads that one.
// It fails only when /proc/net/snmp cannot be read, which every namespace
// has.
func read(procRoot string) (Snapshot, error) {
	s := Snapshot{Time: time.Now(), Counters: map[string]int64{}}
	for _, name := range []string{"snmp", "netstat"} {
		path := procRoot + "/thread-self/net/" + name
		b, err := os.ReadFile(path)
		if err == nil {
			err = parseCounters(string(b), s.Counters)
		}
		if err != nil && name == "snmp" {
			return Snapshot{}, fmt.Errorf("kstat: %w", err)
		}
		if err != nil {
			s.Missing = append(s.Missing, missing(path, err))
		}
	}
	if b, err := os.ReadFile(procRoot + "/sys/net/ipv4/ip_local_port_range"); err != nil {
		s.Missing = append(s.Missing, missing("ip_local_port_range", err))
	} else if s.PortRange, err = parsePortRange(string(b)); err != nil {
		s.Missing = append(s.Missing, missing("ip_local_port_range", err))
	}
	s.Conntrack, s.Missing = readConntrack(procRoot, s.Missing)
	return s, nil
}

// readConntrack reads the table's count and size, and its statistics when
// it can; nil when nf_conntrack is not loaded.
func readConntrack(procRoot string, miss []Missing) (*Conntrack, []Missing) {
	dir := procRoot + "/sys/net/netfilter/"
	var c Conntrack
	for _, f := range []struct {
		name string
		v    *int64
	}{{"nf_conntrack_count", &c.Count}, {"nf_conntrack_max", &c.Max}} {
		b, err := os.ReadFile(dir + f.name)
		if err == nil {
			*f.v, err = parseNumber(string(b))
		}
		if errors.Is(err, fs.ErrNotExist) {
			err = fmt.Errorf("%w: %s%s is absent: the nf_conntrack module is not loaded, "+
				"so no connection is tracked", err, dir, f.name)
		}
		if err != nil {
			return nil, append(miss, missing("conntrack", err))
		}
	}
	path := procRoot + "/thread-self/net/stat/nf_conntrack"
	b, err := os.ReadFile(path)
	if err == nil {
		c.Stats, err = parseConntrackStat(string(b))
	}
	if err != nil {
		miss = append(miss, missing("conntrack stats", err))
	}
	return &c, miss
}
