package cli

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reach-tools/reach/doctor"
	"github.com/reach-tools/reach/internal/netlab"
)

// natVantage is where reach check runs in a NAT case: on the Docker host
// or Kubernetes node itself, on another host asking the agent there, on
// that other host alone, or on the host as an unprivileged user.
type natVantage int

const (
	fromHost natVantage = iota
	viaAgent
	alone
	unprivileged
)

func (v natVantage) String() string { return [...]string{"host", "agent", "alone", "unprivileged"}[v] }

// natWant is what one vantage must report: the cause and confidence, and
// substrings of the first finding's evidence (the container's namespace,
// the rule) and fix. Reachable cases want the path's text instead.
type natWant struct {
	cause    doctor.Cause
	conf     doctor.Confidence
	evidence []string
	fix      string
	// also, when set, is another finding the report must carry; evidence
	// and fix are that finding's.
	also doctor.Cause
}

// natLab is one Docker host or Kubernetes node with a client beside it,
// and a reach agent on the host.
type natLab struct {
	host, client *netlab.Host
	hostAddr     netip.Addr
	agent        string // the agent's URL
	names        map[string]string
}

const natToken = "nat-lab-token-0123456789"

// TestCheckThroughNAT lays out each way a containerised server is
// unreachable as Docker (iptables and nftables backends) and kube-proxy
// (iptables and nftables modes) write it, and runs reach check from the
// host, from a client through the host's agent, and from the client
// alone: the cause, its confidence, the container's namespace named in the
// evidence, and the fix. From the client alone it is never confirmed.
func TestCheckThroughNAT(t *testing.T) {
	bin := buildReach(t)
	nobodyBin := forNobody(t, bin)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(natToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	port80 := netip.MustParseAddrPort("0.0.0.0:80")
	local80 := netip.MustParseAddrPort("127.0.0.1:80")
	lo := netip.MustParseAddr("127.0.0.1")
	p8080 := netlab.Publish{HostPort: 8080, ContainerPort: 80}
	docker := func(o netlab.DockerOptions) func(t *testing.T) *natLab {
		return func(t *testing.T) *natLab {
			d := netlab.New(t).Docker(o)
			l := &natLab{host: d.Host, client: d.Client, hostAddr: d.HostAddr, names: map[string]string{}}
			for _, c := range d.Containers {
				l.names[c.Name] = c.Host.Name()
				if len(c.DNAT) > 0 {
					// nft lists its rules with the counters' values.
					l.names["dnat"] = "dnat to " + c.Addr.String()
					if !d.NFTables {
						l.names["dnat"] = c.DNAT[0]
					}
				}
			}
			return l
		}
	}
	web := func(listen []netip.AddrPort, pub ...netlab.Publish) []netlab.ContainerOptions {
		return []netlab.ContainerOptions{{Name: "web", Listen: listen, Publish: pub}}
	}
	kube := func(mode netlab.KubeProxyMode, listen []netip.AddrPort, endpoints ...string) func(t *testing.T) *natLab {
		return func(t *testing.T) *natLab {
			k := netlab.New(t).Kube(netlab.KubeOptions{Mode: mode,
				Pods:     []netlab.PodOptions{{Name: "api", Listen: listen}},
				Services: []netlab.ServiceOptions{{Name: "api", PortName: "http", Port: 80, TargetPort: 8080, Endpoints: endpoints}}})
			return &natLab{host: k.Node, client: k.Client, hostAddr: k.NodeAddr,
				names: map[string]string{"api": k.Pod("api").Host.Name(), "svc": k.Services[0].ClusterIP.String()}}
		}
	}
	pod8080 := []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:8080")}
	podLocal := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:8080")}
	neverConfirmed := natWant{conf: doctor.Likely}

	type tc struct {
		name   string
		lab    func(t *testing.T) *natLab
		target string // HOST:PORT, lo:PORT or SVC:PORT
		want   map[natVantage]natWant
	}
	var cases []tc
	for _, nft := range []bool{false, true} {
		be := "iptables"
		if nft {
			be = "nftables"
		}
		dopt := func(c []netlab.ContainerOptions) netlab.DockerOptions {
			return netlab.DockerOptions{NFTables: nft, Containers: c}
		}
		cases = append(cases,
			tc{"docker " + be + ": healthy", docker(dopt(web([]netip.AddrPort{port80}, p8080))), "HOST:8080", map[natVantage]natWant{
				fromHost: {cause: doctor.Reachable, conf: doctor.Confirmed, evidence: []string{"DNAT", "198.19.0.2:80 in network namespace {web}", "listens on"}},
				viaAgent: {cause: doctor.Reachable, conf: doctor.Confirmed, evidence: []string{"DNAT", "198.19.0.2:80 in network namespace {web}"}},
				alone:    {cause: doctor.Reachable, conf: doctor.Confirmed},
			}},
			tc{"docker " + be + ": bound to the container's loopback", docker(dopt(web([]netip.AddrPort{local80}, p8080))), "HOST:8080", map[natVantage]natWant{
				fromHost: {cause: doctor.LoopbackOnly, conf: doctor.Confirmed, evidence: []string{"{dnat}", "{web}", "127.0.0.1:80"}, fix: "listen on 0.0.0.0:80"},
				viaAgent: {cause: doctor.LoopbackOnly, conf: doctor.Confirmed, evidence: []string{"{dnat}", "{web}", "127.0.0.1:80"}, fix: "listen on 0.0.0.0:80"},
				alone:    neverConfirmed,
				// Without root neither the rules nor the container can be
				// seen: the listener docker-proxy holds, yet refused.
				unprivileged: {conf: doctor.Possible, fix: "as root"},
			}},
			tc{"docker " + be + ": published to the wrong container port", docker(dopt(web([]netip.AddrPort{port80}, netlab.Publish{HostPort: 8080, ContainerPort: 81}))), "HOST:8080", map[natVantage]natWant{
				fromHost: {cause: doctor.NATMismatch, conf: doctor.Confirmed, evidence: []string{"198.19.0.2:81", "{web}"}, fix: "-p 8080:80"},
				viaAgent: {cause: doctor.NATMismatch, conf: doctor.Confirmed, evidence: []string{"198.19.0.2:81", "{web}"}, fix: "-p 8080:80"},
				alone:    neverConfirmed,
			}},
			tc{"docker " + be + ": not published", docker(dopt(web([]netip.AddrPort{port80}))), "HOST:80", map[natVantage]natWant{
				fromHost: {cause: doctor.NotPublished, conf: doctor.Likely, evidence: []string{"{web}", ":80"}, fix: "docker run -p 80:80"},
				viaAgent: {cause: doctor.NotPublished, conf: doctor.Likely, evidence: []string{"{web}", ":80"}, fix: "docker run -p 80:80"},
				alone:    neverConfirmed,
			}},
			// Nothing listens on 8080 anywhere, but a container listens
			// on 80 and nothing leads there: not-listening is not certain.
			tc{"docker " + be + ": not published, the container on another port", docker(dopt(web([]netip.AddrPort{port80}))), "HOST:8080", map[natVantage]natWant{
				fromHost: {cause: doctor.NotListening, conf: doctor.Likely, also: doctor.NotPublished, evidence: []string{"{web}", "198.19.0.2:80"}, fix: "docker run -p 8080:80"},
				viaAgent: {cause: doctor.NotListening, conf: doctor.Likely, also: doctor.NotPublished, evidence: []string{"{web}", "198.19.0.2:80"}, fix: "docker run -p 8080:80"},
				alone:    neverConfirmed,
			}},
			tc{"docker " + be + ": published on 127.0.0.1 only", docker(dopt(web([]netip.AddrPort{port80}, netlab.Publish{HostIP: lo, HostPort: 8080, ContainerPort: 80}))), "HOST:8080", map[natVantage]natWant{
				fromHost: {cause: doctor.PublishedOnLoopback, conf: doctor.Confirmed, evidence: []string{"127.0.0.1:8080", "{web}"}, fix: "-p 8080:80"},
				viaAgent: {cause: doctor.PublishedOnLoopback, conf: doctor.Confirmed, evidence: []string{"127.0.0.1:8080", "{web}"}, fix: "-p 8080:80"},
				alone:    neverConfirmed,
			}},
			tc{"docker " + be + ": stopped, its rule left", docker(dopt([]netlab.ContainerOptions{{Name: "web", Listen: []netip.AddrPort{port80}, Publish: []netlab.Publish{p8080}, Stopped: true}})), "HOST:8080", map[natVantage]natWant{
				fromHost: {cause: doctor.NATTargetGone, conf: doctor.Confirmed, evidence: []string{"{dnat}", "198.19.0.2", "no network namespace"}, fix: "docker start"},
				viaAgent: {cause: doctor.NATTargetGone, conf: doctor.Confirmed, evidence: []string{"{dnat}", "198.19.0.2", "no network namespace"}, fix: "docker start"},
				alone:    neverConfirmed,
			}},
			tc{"docker " + be + ": docker-proxy's backend bound to its loopback", docker(dopt(web([]netip.AddrPort{local80}, p8080))), "lo:8080", map[natVantage]natWant{
				fromHost: {cause: doctor.ProxyBackendDown, conf: doctor.Confirmed, evidence: []string{"docker-proxy (pid", "{web}", "127.0.0.1:80"}, fix: "listen on 0.0.0.0:80"},
			}},
		)
	}
	cases = append(cases,
		tc{"docker iptables, no proxy: published on 127.0.0.1 only", docker(netlab.DockerOptions{NoProxy: true, Containers: web([]netip.AddrPort{port80}, netlab.Publish{HostIP: lo, HostPort: 8080, ContainerPort: 80})}), "HOST:8080", map[natVantage]natWant{
			fromHost: {cause: doctor.PublishedOnLoopback, conf: doctor.Confirmed, evidence: []string{"127.0.0.1:8080 → DNAT", "{web}"}, fix: "-p 8080:80"},
			viaAgent: {cause: doctor.PublishedOnLoopback, conf: doctor.Confirmed, evidence: []string{"127.0.0.1:8080 → DNAT", "{web}"}, fix: "-p 8080:80"},
		}},
	)
	for _, mode := range []netlab.KubeProxyMode{netlab.KubeIPTables, netlab.KubeNFTables} {
		noEP := []string{"has no endpoints", "default/api:http"}
		if mode == netlab.KubeNFTables {
			noEP = []string{"@no-endpoint-services", "default/api:http"}
		}
		cases = append(cases,
			tc{"kube-proxy " + mode.String() + ": healthy", kube(mode, pod8080, "api"), "SVC:80", map[natVantage]natWant{
				fromHost: {cause: doctor.Reachable, conf: doctor.Confirmed, evidence: []string{"DNAT", "198.19.1.2:8080 in network namespace {api}"}},
				viaAgent: {cause: doctor.Reachable, conf: doctor.Confirmed, evidence: []string{"DNAT", "198.19.1.2:8080 in network namespace {api}"}},
				alone:    {cause: doctor.Reachable, conf: doctor.Confirmed},
			}},
			tc{"kube-proxy " + mode.String() + ": no endpoints", kube(mode, pod8080), "SVC:80", map[natVantage]natWant{
				fromHost:     {cause: doctor.NoEndpoints, conf: doctor.Confirmed, evidence: noEP, fix: "endpointslices"},
				viaAgent:     {cause: doctor.NoEndpoints, conf: doctor.Confirmed, evidence: noEP, fix: "endpointslices"},
				alone:        neverConfirmed,
				unprivileged: neverConfirmed,
			}},
			tc{"kube-proxy " + mode.String() + ": the endpoint bound to the pod's loopback", kube(mode, podLocal, "api"), "SVC:80", map[natVantage]natWant{
				fromHost: {cause: doctor.LoopbackOnly, conf: doctor.Confirmed, evidence: []string{"198.19.1.2:8080", "{api}", "127.0.0.1:8080"}, fix: "listen on 0.0.0.0:8080"},
				viaAgent: {cause: doctor.LoopbackOnly, conf: doctor.Confirmed, evidence: []string{"198.19.1.2:8080", "{api}", "127.0.0.1:8080"}, fix: "listen on 0.0.0.0:8080"},
				alone:    neverConfirmed,
			}},
		)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			l := c.lab(t)
			l.startAgent(t, bin, tokenFile)
			target := strings.NewReplacer("HOST", l.hostAddr.String(), "lo", "127.0.0.1", "SVC", l.names["svc"]).Replace(c.target)
			for _, v := range []natVantage{fromHost, viaAgent, alone, unprivileged} {
				w, ok := c.want[v]
				if !ok {
					continue
				}
				h, args := l.client, []string{"check", target, "--json", "--timeout", "5s"}
				switch v {
				case fromHost:
					h = l.host
				case viaAgent:
					args = append(args, "--agent", l.agent, "--token-file", tokenFile)
				}
				var out, errs string
				if v == unprivileged {
					out, errs = reachAsNobody(t, nobodyBin, l.host, args...)
				} else {
					out, errs, _ = reachIn(t, bin, h, "", args...)
				}
				var r doctor.Report
				if err := json.Unmarshal([]byte(out), &r); err != nil {
					t.Fatalf("%v: %v\n%s\n%s", v, err, out, errs)
				}
				l.check(t, v, w, &r)
			}
		})
	}
}

// forNobody copies bin where user nobody may run it.
func forNobody(t *testing.T, bin string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "reach-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "reach")
	if err := os.WriteFile(out, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return out
}

// reachAsNobody runs bin as user nobody in h's network namespace: it is
// forked from a thread inside it, since nobody may not enter one.
func reachAsNobody(t *testing.T, bin string, h *netlab.Host, args ...string) (string, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := h.Do(cmd.Run); err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("reach as nobody: %v", err)
		}
	}
	return out.String(), errb.String()
}

// startAgent runs reach agent on the host, with a hub that is not there
// (it only answers evidence queries here), and waits until it listens.
func (l *natLab) startAgent(t *testing.T, bin, tokenFile string) {
	t.Helper()
	addr := netip.AddrPortFrom(l.hostAddr, 7070)
	l.agent = "http://" + addr.String()
	l.host.Start(t, bin, "agent", "--hub", "http://127.0.0.1:9", "--name", "node", "--listen", addr.String(), "--token-file", tokenFile)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var c net.Conn
		err := l.client.Do(func() (err error) { c, err = net.DialTimeout("tcp", addr.String(), time.Second); return err })
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent does not listen on %v: %v", addr, err)
		}
	}
}

// check compares a report with what v must see.
func (l *natLab) check(t *testing.T, v natVantage, w natWant, r *doctor.Report) {
	t.Helper()
	dump := func() string { b, _ := json.MarshalIndent(r, "", "  "); return string(b) }
	if v == alone || v == unprivileged {
		if r.Confidence == doctor.Confirmed && r.Cause != doctor.Reachable {
			t.Errorf("%v: %s confirmed: the client alone cannot know that\n%s", v, r.Cause, dump())
		}
		for _, f := range r.Findings {
			if f.Confidence == doctor.Confirmed {
				t.Errorf("%v: finding %s confirmed: the client alone cannot know that", v, f.Cause)
			}
		}
		if w.cause != "" && r.Cause != w.cause {
			t.Errorf("%v: cause %s, want %s\n%s", v, r.Cause, w.cause, dump())
		}
		if w.fix != "" && (len(r.Findings) == 0 || !strings.Contains(r.Findings[0].Fix, w.fix)) {
			t.Errorf("%v: the fix does not say %q\n%s", v, w.fix, dump())
		}
		return
	}
	if r.Cause != w.cause || r.Confidence != w.conf {
		t.Errorf("%v: %s (%s), want %s (%s)\n%s", v, r.Cause, r.Confidence, w.cause, w.conf, dump())
		return
	}
	var evidence, fix string
	if r.Cause == doctor.Reachable {
		for _, a := range r.Addresses {
			for _, p := range a.Paths {
				evidence += p.Text + "\n"
			}
		}
		evidence += r.Verdict
	} else {
		evidence, fix = r.Findings[0].Evidence, r.Findings[0].Fix
	}
	if w.also != "" {
		i := slices.IndexFunc(r.Findings, func(f doctor.Finding) bool { return f.Cause == w.also })
		if i < 0 || r.Findings[i].Confidence == doctor.Confirmed {
			t.Errorf("%v: no %s finding, or a confirmed one\n%s", v, w.also, dump())
			return
		}
		evidence, fix = r.Findings[i].Evidence, r.Findings[i].Fix
	}
	for _, s := range w.evidence {
		s = l.expand(s)
		if !strings.Contains(evidence, s) {
			t.Errorf("%v: the evidence does not say %q:\n%s", v, s, evidence)
		}
	}
	if !strings.Contains(fix, w.fix) {
		t.Errorf("%v: the fix does not say %q: %s", v, w.fix, fix)
	}
}

// expand names the lab's namespaces and rules in a wanted substring.
func (l *natLab) expand(s string) string {
	for k, v := range l.names {
		s = strings.ReplaceAll(s, "{"+k+"}", v)
	}
	return s
}

// The text report shows where the connection went.
func TestCheckThroughNATText(t *testing.T) {
	bin := buildReach(t)
	d := netlab.New(t).Docker(netlab.DockerOptions{Containers: []netlab.ContainerOptions{{Name: "web",
		Listen: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:80")}, Publish: []netlab.Publish{{HostPort: 8080, ContainerPort: 80}}}}})
	out, errs, code := reachIn(t, bin, d.Host, "", "check", netip.AddrPortFrom(d.HostAddr, 8080).String())
	if code != ExitFail {
		t.Fatalf("exit %d, want %d: %s", code, ExitFail, errs)
	}
	want := []string{
		"(loopback-only, confirmed)",
		"Where the connection goes:",
		fmt.Sprintf("%s:8080 → DNAT (iptables nat/DOCKER: %s) → 198.19.0.2:80 in network namespace %s", d.HostAddr, d.Container("web").DNAT[0], d.Container("web").Host.Name()),
		"✗ nat",
	}
	for _, s := range want {
		if !strings.Contains(out, s) {
			t.Errorf("the report does not say %q:\n%s", s, out)
		}
	}
	if slices.Contains(strings.Fields(out), "not-listening") {
		t.Errorf("the report still blames a missing listener:\n%s", out)
	}
}

// TestCheckFromContainerNoHairpin: from inside a container, to its own
// host's published port when no docker-proxy holds it. Docker's
// "-A DOCKER -i docker0 -j RETURN" skips the DNAT for connections that
// arrive from the bridge, so the host refuses them: the report quotes that
// rule and says how to reach the container, never "not-listening,
// confirmed" with "start the server".
func TestCheckFromContainerNoHairpin(t *testing.T) {
	bin := buildReach(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(natToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := netlab.New(t).Docker(netlab.DockerOptions{Containers: []netlab.ContainerOptions{{Name: "web",
		Listen: []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:80")}, Publish: []netlab.Publish{{HostPort: 8080, ContainerPort: 80}}}}})
	web := d.Container("web")
	proxy := web.Proxies[0]
	if err := syscall.Kill(proxy.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		// Gone, or a zombie its lab has not reaped yet: its socket is closed.
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", proxy.Pid))
		if err != nil || strings.Contains(string(b), "State:\tZ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("docker-proxy (pid %d) still runs", proxy.Pid)
		}
	}
	l := &natLab{host: d.Host, client: web.Host, hostAddr: d.HostAddr}
	l.startAgent(t, bin, tokenFile)
	out, errs, _ := reachIn(t, bin, d.Host, "", "check", "--netns", web.Host.Name(), netip.AddrPortFrom(d.HostAddr, 8080).String(),
		"--json", "--timeout", "5s", "--agent", l.agent, "--token-file", tokenFile)
	var r doctor.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v\n%s\n%s", err, out, errs)
	}
	dump := func() string { b, _ := json.MarshalIndent(r, "", "  "); return string(b) }
	if r.Cause != doctor.NotPublished || r.Confidence == doctor.Possible {
		t.Fatalf("%s (%s), want not-published, likely or confirmed\n%s", r.Cause, r.Confidence, dump())
	}
	for _, f := range r.Findings {
		if f.Cause == doctor.NotListening && f.Confidence == doctor.Confirmed {
			t.Errorf("not-listening confirmed\n%s", dump())
		}
	}
	f := r.Findings[0]
	for _, s := range []string{"-i docker0 -j RETURN", web.DNAT[0]} {
		if !strings.Contains(f.Evidence, s) {
			t.Errorf("the evidence does not quote %q: %s", s, f.Evidence)
		}
	}
	for _, s := range []string{"198.19.0.2:80", "userland proxy"} {
		if !strings.Contains(f.Fix, s) {
			t.Errorf("the fix does not say %q: %s", s, f.Fix)
		}
	}
}
