package probe_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/reach-tools/reach/app"
	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/internal/netlab"
	"github.com/reach-tools/reach/internal/testdb"
	"github.com/reach-tools/reach/probe"
)

// TestDatabaseURLsThroughProbe runs the database layers as every command
// does, from a URL through probe.Layers and probe.Run, against real servers:
// the result's Ready and Layer name the layer and its cause id.
func TestDatabaseURLsThroughProbe(t *testing.T) {
	lab := netlab.New(t)
	redis := testdb.StartRedis(t, lab.Host("redis"), "", "requirepass s3cret")
	standby := testdb.StartPostgres(t, lab.Host("standby"), testdb.PostgresOptions{
		Standby: true, Settings: []string{"hot_standby = off"}})
	for _, c := range []struct {
		url    string
		srv    *testdb.Server
		ready  bool
		layer  string
		cause  app.Cause
		detail string
	}{
		{"redis://127.0.0.1", redis.Server, true, "redis", "", "NOAUTH"},
		{"postgres://127.0.0.1/app", standby.Server, false, "postgres", app.NotReady, "57P03"},
	} {
		target, err := endpoint.ParseTarget(c.url)
		if err != nil {
			t.Fatal(err)
		}
		tlsOpt, req := probe.Layers(target)
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		r := probe.Run(ctx, target.Endpoint, probe.Options{Timeout: 10 * time.Second, TLS: tlsOpt, App: req,
			Dial: c.srv.DialFunc(netip.Addr{})})
		cancel()
		layer, cause, detail := r.Layer()
		if r.Class != probe.Open || r.Ready() != c.ready || layer != c.layer || cause != c.cause || !strings.Contains(detail, c.detail) {
			t.Errorf("%s: class %s ready %v layer %q cause %q detail %q; want open, ready %v, layer %q, cause %q, detail ~ %q",
				c.url, r.Class, r.Ready(), layer, cause, detail, c.ready, c.layer, c.cause, c.detail)
		}
		if r.App == nil || r.App.FirstByte <= 0 {
			t.Errorf("%s: no first-byte time: %+v", c.url, r.App)
		}
	}
}
