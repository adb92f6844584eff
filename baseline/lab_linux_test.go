package baseline_test

import (
	"encoding/json"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reach-tools/reach/baseline"
	"github.com/reach-tools/reach/doctor"
	"github.com/reach-tools/reach/internal/netlab"
	"github.com/reach-tools/reach/probe"
)

// fleet is four namespaces: a client, a router, and two servers behind
// it on subnets of their own, web and db.
type fleet struct {
	client, router, web, db *netlab.Host
	webAddr, dbAddr         netip.Addr
	webNet                  netip.Prefix
}

func newFleet(t *testing.T) *fleet {
	l := netlab.New(t)
	f := &fleet{client: l.Host("client"), router: l.Host("router"), web: l.Host("web"), db: l.Host("db")}
	clientAddr, routerC := l.Link(f.client, f.router)
	routerW, webAddr := l.Link(f.router, f.web)
	routerD, dbAddr := l.Link(f.router, f.db)
	f.webAddr, f.dbAddr = webAddr, dbAddr
	f.router.Sysctl(t, "net.ipv4.ip_forward", "1")
	f.webNet = netip.PrefixFrom(webAddr, 24).Masked()
	f.client.AddRoute(t, f.webNet.String(), "via", routerC.String())
	f.client.AddRoute(t, netip.PrefixFrom(dbAddr, 24).Masked().String(), "via", routerC.String())
	clientNet := netip.PrefixFrom(clientAddr, 24).Masked().String()
	f.web.AddRoute(t, clientNet, "via", routerW.String())
	f.db.AddRoute(t, clientNet, "via", routerD.String())
	return f
}

func (f *fleet) ap(a netip.Addr, port uint16) string { return netip.AddrPortFrom(a, port).String() }

// buildReach builds cmd/reach, to run it inside namespaces.
func buildReach(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "reach")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/reach").CombinedOutput(); err != nil {
		t.Fatalf("building reach: %v\n%s", err, out)
	}
	return bin
}

// reachIn runs the reach binary inside h and returns stdout, stderr and
// the exit status.
func reachIn(t testing.TB, bin string, h *netlab.Host, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.Name(), bin}, args...)...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// Issue 14's proof: a baseline of a four-namespace fleet, then a DROP rule
// (in db's own table), a route removed (the client's to web's subnet) and a
// port opened by mistake (db:8080), and a DROP rule taken away (db:6379, a
// firewall opened). Through the library and the binary, diff names the
// DROP firewall-drop and the route no-route, reports both ports newly open,
// and before any change finds nothing (exit 0).
func TestFleetChanges(t *testing.T) {
	netlab.Require(t)
	f := newFleet(t)
	bin := buildReach(t)
	f.web.Serve(t, "web", netip.AddrPortFrom(f.webAddr, 80))
	f.db.Serve(t, "db", netip.AddrPortFrom(f.dbAddr, 5432))
	web80, web22 := f.ap(f.webAddr, 80), f.ap(f.webAddr, 22)
	db5432, db8080, db6379 := f.ap(f.dbAddr, 5432), f.ap(f.dbAddr, 8080), f.ap(f.dbAddr, 6379)
	set := []string{web80, web22, db5432, db8080, db6379}
	// db6379 listens behind a DROP rule: filtered, until the rule goes.
	f.db.Serve(t, "cache", netip.AddrPortFrom(f.dbAddr, 6379))
	guard := f.db.AddRule(t, "filter", "-A INPUT -p tcp -m tcp --dport 6379 -j DROP")

	const timeout = time.Second
	opt := baseline.Options{Timeout: timeout, Dial: f.client.DialContext,
		Doctor: doctor.Options{Enter: f.client.Do, Hold: -1}}
	targets, err := baseline.ParseTargets(set)
	if err != nil {
		t.Fatal(err)
	}
	base, err := baseline.Save(t.Context(), targets, opt)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]probe.Class{web80: probe.Open, web22: probe.Refused, db5432: probe.Open, db8080: probe.Refused,
		db6379: probe.Timeout}
	for _, e := range base.Entries {
		if e.Class != want[e.Target.Target] {
			t.Fatalf("baseline: %s %s, want %s", e.Target.Target, e.Class, want[e.Target.Target])
		}
	}
	pre := filepath.Join(t.TempDir(), "pre.json")
	if _, errs, code := reachIn(t, bin, f.client, append([]string{"baseline", "save", "-o", pre, "--timeout", "1s"}, set...)...); code != 0 {
		t.Fatalf("reach baseline save: exit %d: %s", code, errs)
	}

	// Nothing changed yet.
	if r, err := baseline.Diff(t.Context(), base, baseline.DiffOptions{Options: opt}); err != nil || r.Differs() || r.Unchanged != 5 {
		t.Fatalf("diff before any change: %+v, %v", r, err)
	}
	if out, errs, code := reachIn(t, bin, f.client, "baseline", "diff", pre); code != 0 ||
		!strings.Contains(out, "5 endpoints: 0 broken, 0 newly open, 0 changed, 0 slower, 5 unchanged") {
		t.Fatalf("reach baseline diff before any change: exit %d\n%s%s", code, out, errs)
	}

	f.db.AddRule(t, "filter", "-A INPUT -p tcp -m tcp --dport 5432 -j DROP")
	f.client.Run(t, "ip", "route", "del", f.webNet.String())
	ln := f.db.Listen(t, "tcp", db8080)
	defer ln.Close()
	guard.Remove(t)

	check := func(t *testing.T, r *baseline.Report) {
		t.Helper()
		causes := map[string]baseline.Change{}
		for _, c := range append(append(r.Broken, r.Changed...), r.Opened...) {
			causes[c.Target.Target] = c
		}
		for target, w := range map[string]struct {
			kind  baseline.Kind
			class probe.Class
			cause doctor.Cause
		}{
			web80:  {baseline.Broken, probe.NetUnreachable, doctor.NoRoute},
			web22:  {baseline.Changed, probe.NetUnreachable, doctor.NoRoute},
			db5432: {baseline.Broken, probe.Timeout, doctor.FirewallDrop},
			db8080: {baseline.Opened, probe.Open, doctor.Reachable},
			db6379: {baseline.Opened, probe.Open, doctor.Reachable},
		} {
			c, ok := causes[target]
			if !ok || c.Kind != w.kind || c.Now.Class != w.class || c.Now.Cause != w.cause {
				t.Errorf("%s: %+v; want %s, now %s, cause %s", target, c, w.kind, w.class, w.cause)
			}
			if w.kind == baseline.Broken && c.Fix == "" {
				t.Errorf("%s: no fix from the doctor: %+v", target, c)
			}
		}
		if r.Unchanged != 0 || len(r.Slower) != 0 || !r.Differs() {
			t.Errorf("unchanged %d, slower %v", r.Unchanged, r.Slower)
		}
	}
	t.Run("library", func(t *testing.T) {
		r, err := baseline.Diff(t.Context(), base, baseline.DiffOptions{Options: opt})
		if err != nil {
			t.Fatal(err)
		}
		check(t, r)
	})
	t.Run("binary", func(t *testing.T) {
		out, errs, code := reachIn(t, bin, f.client, "baseline", "diff", pre, "--json")
		if code != 1 {
			t.Fatalf("exit %d, want 1: %s", code, errs)
		}
		var r baseline.Report
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if r.Schema != baseline.DiffSchema {
			t.Errorf("schema %q", r.Schema)
		}
		check(t, &r)
		out, _, code = reachIn(t, bin, f.client, "baseline", "diff", pre)
		t.Logf("reach baseline diff, after the changes:\n%s", out)
		for _, want := range []string{
			"BROKEN      " + db5432 + ": was open", "now timeout: firewall-drop",
			"BROKEN      " + web80 + ": was open", "now net-unreachable: no-route",
			"NEWLY OPEN  " + db8080 + ": was refused (not-listening), now open",
			"NEWLY OPEN  " + db6379 + ": was timeout (firewall-drop), now open",
			"was filtered (timeout), now accepts: a firewall rule opened it",
			"5 endpoints: 2 broken, 2 newly open, 1 changed, 0 slower, 0 unchanged",
		} {
			if code != 1 || !strings.Contains(out, want) {
				t.Errorf("exit %d; text lacks %q:\n%s", code, want, out)
			}
		}
	})
}
