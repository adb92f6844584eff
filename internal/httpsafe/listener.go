package httpsafe

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// LogEvery is the least time between two log lines about refused
// connections: a flood of them writes one line, with its count.
const LogEvery = 10 * time.Second

// Why a connection was refused, the label of the refused counter.
const (
	refusedTotal     = "total"
	refusedPerClient = "per_client"
)

// limitListener closes at once every connection beyond its caps, so a
// client holding many costs us no more than the caps.
type limitListener struct {
	net.Listener
	caps Caps
	m    *metrics
	log  *slog.Logger

	mu       sync.Mutex
	open     int
	byClient map[netip.Addr]int
	lastLog  time.Time
	unlogged map[string]int // refusals since the last log line, by reason
}

func newLimitListener(ln net.Listener, caps Caps, m *metrics, log *slog.Logger) *limitListener {
	l := &limitListener{Listener: ln, caps: caps, m: m, log: log,
		byClient: map[netip.Addr]int{}, unlogged: map[string]int{}}
	m.openFunc(func() float64 {
		l.mu.Lock()
		defer l.mu.Unlock()
		return float64(l.open)
	})
	return l
}

// Accept returns the next connection within the caps. The loop ends with
// the listener: every pass waits for a new connection.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		client := clientOf(c.RemoteAddr())
		if reason := l.admit(client); reason != "" {
			c.Close()
			l.refused(reason, client)
			continue
		}
		return &limitConn{Conn: c, l: l, client: client}, nil
	}
}

// admit counts a connection from client in, or says which cap it exceeds.
func (l *limitListener) admit(client netip.Addr) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.open >= l.caps.Total:
		return refusedTotal
	case l.byClient[client] >= l.caps.PerClient:
		return refusedPerClient
	}
	l.open++
	l.byClient[client]++
	return ""
}

func (l *limitListener) release(client netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if l.byClient[client]--; l.byClient[client] <= 0 {
		delete(l.byClient, client)
	}
}

// refused counts a refusal and logs it, at most once per LogEvery.
func (l *limitListener) refused(reason string, client netip.Addr) {
	l.m.refused.WithLabelValues(reason).Inc()
	l.mu.Lock()
	l.unlogged[reason]++
	now := time.Now()
	if now.Sub(l.lastLog) < LogEvery {
		l.mu.Unlock()
		return
	}
	total, perClient := l.unlogged[refusedTotal], l.unlogged[refusedPerClient]
	clear(l.unlogged)
	l.lastLog = now
	open := l.open
	l.mu.Unlock()
	l.log.Warn("refusing HTTP connections beyond the caps: they are closed at once "+
		"(raise --http-max-conns / --http-max-conns-per-client, or the file limit, if they are clients you want)",
		"over_total", total, "over_per_client", perClient, "last_client", client.String(),
		"open", open, "max_conns", l.caps.Total, "max_conns_per_client", l.caps.PerClient,
		"since_last_line", LogEvery.String())
}

// clientOf is who a connection counts against: its IPv4 address, or its
// IPv6 address's /64, since one host commonly holds a whole /64 and could
// otherwise take a new address for every connection. The zero Addr groups
// the connections whose address is not IP (unix sockets, pipes in tests).
func clientOf(a net.Addr) netip.Addr {
	var ip netip.Addr
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, _ = netip.AddrFromSlice(ta.IP)
	} else if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		ip = ap.Addr()
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.WithZone("").Prefix(64)
		return p.Addr()
	}
	return ip
}

// limitConn gives its place back once, on its first Close.
type limitConn struct {
	net.Conn
	l      *limitListener
	client netip.Addr
	once   sync.Once
}

func (c *limitConn) Close() error {
	c.once.Do(func() { c.l.release(c.client) })
	return c.Conn.Close()
}

// metrics are the listener's series; nil-safe when not registered.
type metrics struct {
	refused *prometheus.CounterVec
	reg     prometheus.Registerer
}

func newMetrics(reg prometheus.Registerer, caps Caps) *metrics {
	m := &metrics{reg: reg, refused: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "reach_http_connections_refused_total",
		Help: "HTTP connections closed at once because a connection cap was reached " +
			"(reason total or per_client).",
	}, []string{"reason"})}
	if reg == nil {
		return m
	}
	if err := reg.Register(m.refused); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			m.refused = are.ExistingCollector.(*prometheus.CounterVec)
		}
	}
	limit := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "reach_http_connections_limit",
		Help: "The caps on open HTTP connections (scope total or per_client).",
	}, []string{"scope"})
	limit.WithLabelValues("total").Set(float64(caps.Total))
	limit.WithLabelValues("per_client").Set(float64(caps.PerClient))
	_ = reg.Register(limit)
	return m
}

// openFunc exports the open connections' count as read by f.
func (m *metrics) openFunc(f func() float64) {
	if m.reg == nil {
		return
	}
	_ = m.reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "reach_http_connections_open", Help: "Open HTTP connections.",
	}, f))
}
