// Package web serves the reach watch dashboard from the monitor's process:
// an HTML page with embedded assets (no build step, no CDN), the JSON API it
// reads, live updates over server-sent events, and /metrics. Everything is
// read-only; all but the static assets and /healthz sit behind optional
// token or basic auth. Other views (the agents' connectivity matrix) plug in
// with Server.Handle.
package web

import (
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/reach-tools/reach/internal/httpsafe"
	"github.com/reach-tools/reach/monitor"
)

//go:embed static
var static embed.FS

// Options configure a dashboard server.
type Options struct {
	Monitor *monitor.Monitor
	// Gatherer serves /metrics; nil leaves /metrics out.
	Gatherer prometheus.Gatherer
	// Token, when set, is accepted as "Authorization: Bearer TOKEN" or as
	// ?token=TOKEN (for links and EventSource, which cannot set headers).
	Token string
	// User and Password, when set, are accepted as HTTP basic auth.
	User, Password string
	// Alerting, when set, serves the maintenance windows (GET
	// /api/maintenance) and, with WriteToken, takes new ones (POST
	// /api/maintenance, DELETE /api/maintenance/{id}).
	Alerting *monitor.Alerting
	// WriteToken, when set, is what a write must carry as "Authorization:
	// Bearer TOKEN": the only writes are maintenance windows. It never
	// comes in a query string (links and logs keep those). Without it the
	// dashboard is read-only.
	WriteToken string
	// StreamLifetime bounds one live-update stream (/api/events); the page
	// reconnects at once. Zero is DefaultStreamLifetime.
	StreamLifetime time.Duration
	Logger         *slog.Logger
}

// Live-update streams outlive the server's write timeout: each write gets
// its own deadline instead, and the stream its own lifetime.
const (
	// DefaultStreamLifetime bounds a stream, so that a client cannot hold
	// one (and its connection) forever; the page reconnects.
	DefaultStreamLifetime = 10 * time.Minute
	// streamWriteTimeout bounds each write of a stream: a client that stops
	// reading is cut after it.
	streamWriteTimeout = 10 * time.Second
)

// Server is the dashboard's http.Handler.
type Server struct {
	opt    Options
	log    *slog.Logger
	mux    *http.ServeMux
	uptime uptimeCache
}

// New builds the dashboard: / (the page), /static/, /api/..., /metrics.
func New(opt Options) *Server {
	s := &Server{opt: opt, log: opt.Logger, mux: http.NewServeMux()}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	sub, _ := fs.Sub(static, "static")
	s.mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(sub)))
	s.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, sub, "index.html")
	})
	s.mux.HandleFunc("GET /healthz", s.serveHealth)
	s.registerAPI()
	if opt.Gatherer != nil {
		s.mux.Handle("GET /metrics",
			promhttp.HandlerFor(opt.Gatherer, promhttp.HandlerOpts{ErrorLog: slogPrinter{s.log}}))
	}
	return s
}

// serveHealth answers ok, or 503 once every write to the store has failed
// for the monitor's grace: a process that keeps no history is not healthy.
// /healthz is public, so only an authorized request (or any, on a dashboard
// without auth) sees the store's error, which may name its host.
func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	if m := s.opt.Monitor; m != nil {
		if h := m.StoreHealth(); !h.Healthy {
			reason := fmt.Sprintf("%d store writes failed in a row, since %s", h.Failed,
				h.Since.UTC().Format(time.RFC3339))
			if s.authorized(r) {
				reason = h.String()
			}
			http.Error(w, "unhealthy: "+reason, http.StatusServiceUnavailable)
			return
		}
	}
	w.Write([]byte("ok\n"))
}

// Handle adds another read-only page or API behind the same auth, e.g.
// s.Handle("/agents/", hub.Pages()).
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// ServeHTTP checks auth, refuses writes and serves the request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy",
		"default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'")
	h.Set("Referrer-Policy", "no-referrer")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		s.serveWrite(w, r)
		return
	}
	// The embedded assets hold no data, and a page opened with ?token=
	// cannot pass the token on to its <script> and <link>: they are public,
	// as is /healthz for load balancers and liveness probes.
	if !s.authorized(r) && !strings.HasPrefix(r.URL.Path, "/static/") && r.URL.Path != "/healthz" {
		if s.opt.User != "" {
			h.Add("WWW-Authenticate", `Basic realm="reach", charset="UTF-8"`)
		}
		if s.opt.Token != "" {
			h.Add("WWW-Authenticate", `Bearer realm="reach"`)
		}
		http.Error(w, "unauthorized: pass the token (Authorization: Bearer TOKEN or ?token=TOKEN) "+
			"or the basic-auth user", http.StatusUnauthorized)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// serveWrite takes the dashboard's only writes, maintenance windows, from
// a request with the write token, and refuses every other.
func (s *Server) serveWrite(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	write := r.URL.Path == "/api/maintenance" && r.Method == http.MethodPost ||
		strings.HasPrefix(r.URL.Path, "/api/maintenance/") && r.Method == http.MethodDelete
	if !write || s.opt.Alerting == nil {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "the dashboard is read-only but for POST /api/maintenance and "+
			"DELETE /api/maintenance/ID", http.StatusMethodNotAllowed)
		return
	}
	if s.opt.WriteToken == "" {
		http.Error(w, "writes are off: start reach watch with REACH_WATCH_WRITE_TOKEN (or --write-token) "+
			"and send it as Authorization: Bearer TOKEN", http.StatusForbidden)
		return
	}
	a := r.Header.Get("Authorization")
	if len(a) <= 7 || !strings.EqualFold(a[:7], "Bearer ") || !equal(a[7:], s.opt.WriteToken) {
		h.Add("WWW-Authenticate", `Bearer realm="reach-write"`)
		http.Error(w, "unauthorized: a write needs the write token as Authorization: Bearer TOKEN",
			http.StatusUnauthorized)
		return
	}
	s.mux.ServeHTTP(w, r)
}

func (s *Server) authorized(r *http.Request) bool {
	if s.opt.Token == "" && s.opt.User == "" {
		return true
	}
	if s.opt.Token != "" {
		tok := r.URL.Query().Get("token")
		// The scheme is case-insensitive: some clients send "bearer".
		if a := r.Header.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "Bearer ") {
			tok = a[7:]
		}
		if tok != "" && equal(tok, s.opt.Token) {
			return true
		}
	}
	if s.opt.User != "" {
		u, p, ok := r.BasicAuth()
		// Compare both, always, so timing tells nothing about which was wrong.
		userOK, passOK := equal(u, s.opt.User), equal(p, s.opt.Password)
		if ok && userOK && passOK {
			return true
		}
	}
	return false
}

// equal compares secrets in constant time, telling neither length.
func equal(a, b string) bool { return httpsafe.Equal(a, b) }

type slogPrinter struct{ l *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.l.Error("metrics", "err", v) }
