package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/probe"
	"github.com/reach-tools/reach/scan"
	"github.com/spf13/cobra"
)

func init() { register("scan", newScanCmd) }

// showLimit is how many ports of one non-open state are listed before they
// are summarized in a "Not shown" line, as nmap does.
const showLimit = 25

type scanFlags struct {
	ports, excludePorts, exclude, inputList string
	top                                     int
	reason, allStates, asJSON               bool
	skipDiscovery, hostsOnly                bool
	rate                                    float64
	maxRetries                              int
	maxProbes                               int64
	engine                                  string
	timeout                                 time.Duration
	local                                   localFlags
}

func newScanCmd(env *Env) *cobra.Command {
	var fl scanFlags
	cmd := &cobra.Command{
		Use:   "scan TARGETS... [-p PORTS]",
		Short: "Find which TCP ports answer on hosts (a connect scan, like nmap -sT)",
		Long: `Scan TCP ports with ordinary connect() calls: no privileges needed (host
discovery, below, sends ARP and raw ICMP itself when it has CAP_NET_RAW).
Each port gets nmap's state and a reason:

  open      the handshake completed (syn-ack)
  closed    a reset came back (conn-refused) or ICMP port-unreachable
  filtered  nothing came back (no-response), or ICMP admin-prohibited:
            a firewall is in the way

A host that cannot be reached at all is reported once, as host-unreachable
(no ARP/ND answer, or a router said so) or no-route, instead of as thousands
of filtered ports.

Host discovery (like nmap's ping scan) comes first: each target is asked
whether it is there, and only hosts that may be are port-scanned. On a
directly connected segment that is ARP (IPv4) or neighbour solicitation
(IPv6); through a router, ICMP echo and TCP pings to ports 80, 443 and 22
(a SYN-ACK or a reset both mean up). Every host says how it was judged
(judged_by) and why (reason):

  arp-response, nd-response  it answered ARP / neighbour solicitation
  echo-reply                 it answered an ICMP echo
  syn-ack, reset             it answered a TCP ping
  no-response                nothing answered: down (host-unreachable)
                             only on a connected segment where other hosts
                             answered; elsewhere its ports are scanned, and
                             their reasons judge it (judged_by "ports")

A host is declared down only on evidence as strong as the kernel's own:
silence to three ARP/ND requests, each waiting its full timeout (adapted
to the answers seen: 60, 120 and 240 ms on a fast segment), on a segment
where others answered. Unprivileged, reach cannot send ARP/ND itself: a
TCP connect makes the kernel ask, and its neighbour table answers, over the
same 420 ms. A host that answers late (within that window) or only on TCP
is never declared down: when the evidence is thin, its ports decide (a
host silent behind a router: each probe waits as long as its last ping).
--skip-discovery (nmap's -Pn) scans every target's ports, as if all were
up; --hosts-only (nmap's -sn) stops after discovery.

TARGETS are host names, addresses, CIDR blocks (198.18.0.0/24, fd00::/120)
and ranges (198.18.0.1-20, 198.18.0.250-198.18.1.5); -iL FILE reads more
from a file, one or more per line ("-" reads standard input, '#' comments).

Ports: -p 22,80,8000-8100 or -p ssh,https; -p- means all 65,535. Without
-p, reach scans its own list of common ports (--top N for the first N; the
list and where it comes from are in scan/topports.txt). Service names come
from /etc/services.

Speed: the scan runs one event loop per CPU, sizes its concurrency from the
open-file limit, and adapts each host's timeout to its measured round trips
(--timeout is the ceiling). Until a host answers at all, its probes wait up
to 4s: Linux needs 3s to give up on ARP, and only then can a host that is
not there be told from one behind a firewall. Unanswered ports are retried
(--max-retries); answered ones never are. Ctrl-C stops the scan and prints
what was found so far; the hosts it had decided no port of yet share one
line (in JSON, one "unscanned" record).

Size: a scan of more than --max-probes hosts × ports (16,777,216 by default:
every port of a /24) is refused before anything is sent, with its size.
nmap starts any scan it is given; a /12 with -p- is 68.7 billion probes,
days of traffic, so reach asks you to confirm: give --max-probes at least
that number (or 0 for no limit).

--source ADDR scans from that address of this host (names resolve to that
family); --interface NAME sends every probe out of that interface, whatever
the routes prefer.

Exit status: 0 the scan finished (whatever the ports' states), 1 it failed
or was interrupted (what was found so far is printed), 2 usage error.`,
		Example: `  reach scan 127.0.0.1 -p-                    # every port of this host
  reach scan 198.18.0.0/24 --hosts-only       # which hosts are there (nmap -sn)
  reach scan 198.18.0.0/24 -p 22 --skip-discovery   # probe every address (nmap -Pn)
  reach scan db.internal -p 5432,6432 --reason
  reach scan 198.18.0.0/24 --top 100 --exclude 198.18.0.1
  reach scan -iL hosts.txt -p 22 --json | jq -c 'select(.state=="open")'
  reach scan 198.18.0.7 -p 1-1024 --all-states --rate 500
  reach scan 198.18.0.7 -p 22,80 --source 198.18.1.1   # what that address of ours may reach`,
		// Flags are parsed in RunE so nmap's "-iL FILE" spelling works.
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			f := cmd.Flags()
			if err := f.Parse(nmapArgs(args)); err != nil {
				return &UsageError{Err: err}
			}
			if help, _ := f.GetBool("help"); help {
				return cmd.Help()
			}
			return runScan(env, cmd, f.Args(), fl)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&fl.ports, "ports", "p", "", `ports to scan: "22,80,8000-8100", "ssh,https", "-" for all`)
	f.IntVar(&fl.top, "top", 0, fmt.Sprintf("scan the N most common ports of reach's list (%d ports)", scan.TopPortsLen()))
	f.StringVar(&fl.inputList, "input-list", "", `read targets from FILE ("-" for stdin); nmap's -iL FILE works too`)
	f.StringVar(&fl.exclude, "exclude", "", "addresses, CIDRs or ranges not to scan (comma-separated)")
	f.StringVar(&fl.excludePorts, "exclude-ports", "", "ports not to scan")
	f.BoolVar(&fl.reason, "reason", false, "show why each port has its state")
	f.BoolVar(&fl.allStates, "all-states", false, "list every port, not only open ones and small groups")
	f.BoolVar(&fl.skipDiscovery, "skip-discovery", false, "no host discovery: scan the ports of every target (nmap's -Pn works too)")
	f.BoolVar(&fl.hostsOnly, "hosts-only", false, "host discovery only, no port scan (nmap's -sn works too)")
	f.BoolVar(&fl.asJSON, "json", false, "stream JSON Lines (schema reach.scan/v1, each with a type): port records as they are decided (open ones; every port with --all-states), then host, unscanned and summary records")
	f.Float64Var(&fl.rate, "rate", 0, "at most N new connections per second (0: no limit)")
	f.IntVar(&fl.maxRetries, "max-retries", scan.DefaultRetries, "retries for ports that got no answer")
	f.Int64Var(&fl.maxProbes, "max-probes", scan.DefaultMaxProbes, "refuse a scan of more hosts × ports than this; raise it to confirm a larger one (0: no limit)")
	fl.local.add(f)
	// For comparing engines (bench, tests): the default is epoll on Linux
	// and the portable engine elsewhere.
	f.StringVar(&fl.engine, "engine", "", "scan engine: epoll (Linux) or portable (net.Dialer on goroutines)")
	_ = f.MarkHidden("engine")
	f.DurationVar(&fl.timeout, "timeout", scan.DefaultTimeout, fmt.Sprintf("longest wait for one port of a host that has answered (until then up to %v); shorter once round trips are measured", scan.DefaultDiscoveryWait))
	return cmd
}

// nmapArgs rewrites nmap's two-letter "-iL", "-Pn" and "-sn" into the long
// flags.
func nmapArgs(args []string) []string {
	out := make([]string, 0, len(args))
	for _, a := range args {
		switch {
		case a == "--":
			return append(out, args[len(out):]...)
		case a == "-iL":
			a = "--input-list"
		case a == "-Pn":
			a = "--skip-discovery"
		case a == "-sn":
			a = "--hosts-only"
		case strings.HasPrefix(a, "-iL="):
			a = "--input-list=" + a[len("-iL="):]
		}
		out = append(out, a)
	}
	return out
}

func runScan(env *Env, cmd *cobra.Command, args []string, fl scanFlags) error {
	hosts, err := scanTargets(env, args, fl.inputList)
	if err != nil {
		return err
	}
	if fl.skipDiscovery && fl.hostsOnly {
		return usageErrorf("give either --skip-discovery or --hosts-only, not both")
	}
	var ports []uint16
	if fl.hostsOnly {
		if cmd.Flags().Changed("ports") || cmd.Flags().Changed("top") || cmd.Flags().Changed("exclude-ports") {
			return usageErrorf("--hosts-only scans no ports; drop -p, --top and --exclude-ports")
		}
	} else if ports, err = scanPorts(cmd, fl); err != nil {
		return err
	}
	var exclude []endpoint.Hosts
	if fl.exclude != "" {
		if exclude, err = endpoint.ParseHostList(fl.exclude); err != nil {
			return usageErrorf("--exclude: %w", err)
		}
	}
	switch {
	case fl.rate < 0 || math.IsNaN(fl.rate) || math.IsInf(fl.rate, 0):
		return usageErrorf("--rate %v: give a positive number of connections per second, or 0 for no limit", fl.rate)
	case fl.maxRetries < 0 || fl.maxRetries > scan.MaxRetryLimit:
		return usageErrorf("--max-retries %d: give 0 to %d", fl.maxRetries, scan.MaxRetryLimit)
	case fl.timeout <= 0:
		return usageErrorf("--timeout %v: give a positive duration such as 500ms", fl.timeout)
	case fl.maxProbes < 0:
		return usageErrorf("--max-probes %d: give a number of probes (hosts × ports), or 0 for no limit", fl.maxProbes)
	}
	source, iface, err := fl.local.parse("tcp", true)
	if err != nil {
		return err
	}
	// A name resolves to addresses of the source's family.
	targets, err := scan.Expand(cmd.Context(), hosts, exclude, probe.Options{Source: source})
	if errors.Is(err, scan.ErrTooBig) || errors.Is(err, scan.ErrZone) || errors.Is(err, scan.ErrExcludeName) {
		return &UsageError{Err: err}
	}
	if err != nil {
		return &ExitError{Code: ExitFail, Err: err}
	}
	if len(targets) == 0 {
		return usageErrorf("every target is excluded; nothing to scan")
	}

	r := &scanRenderer{env: env, fl: fl, services: scan.SystemServices(), emitted: map[netip.Addr]bool{}}
	opt := scan.Options{Ports: ports, Rate: fl.rate, MaxRetries: fl.maxRetries, Timeout: fl.timeout,
		Source: source, Interface: iface, Discover: !fl.skipDiscovery, HostsOnly: fl.hostsOnly, Engine: scan.Engine(fl.engine)}
	if fl.maxRetries == 0 {
		opt.MaxRetries = -1
	}
	opt.MaxProbes = fl.maxProbes
	if fl.maxProbes == 0 {
		opt.MaxProbes = -1
	}
	if fl.asJSON {
		r.enc = json.NewEncoder(env.Out)
		opt.OnPort, opt.OnHost = r.jsonPort, r.jsonHost
	}
	if showsProgress(env.Err) {
		opt.Progress = r.progress
	}
	rep, err := scan.Scan(cmd.Context(), targets, opt)
	r.clearProgress()
	if se := (*scan.SizeError)(nil); errors.As(err, &se) {
		return usageErrorf("%s hosts × %s ports is %s probes, more than --max-probes %s: nothing was sent. "+
			"To confirm a scan this size, give --max-probes %d; or scan fewer hosts or ports",
			thousands(int64(se.Hosts)), thousands(int64(se.Ports)), thousands(se.Probes), thousands(se.Limit), se.Probes)
	}
	if rep == nil && isLocalError(err) { // e.g. a target of the other family than --source
		return &UsageError{Err: err}
	}
	if rep == nil {
		return &ExitError{Code: ExitFail, Err: err}
	}
	if fl.asJSON {
		r.jsonEnd(rep)
	} else {
		r.text(rep)
	}
	switch {
	case rep.Canceled:
		return &ExitError{Code: ExitFail, Err: fmt.Errorf("scan interrupted after %v; the results above are partial", rep.Elapsed.Round(time.Millisecond))}
	case err != nil:
		return &ExitError{Code: ExitFail, Err: err}
	}
	return nil
}

func scanTargets(env *Env, args []string, inputList string) ([]endpoint.Hosts, error) {
	var hosts []endpoint.Hosts
	for _, a := range args {
		h, err := endpoint.ParseHosts(a)
		if err != nil {
			return nil, &UsageError{Err: err}
		}
		hosts = append(hosts, h)
	}
	if inputList != "" {
		src, in := inputList, env.In
		if inputList == "-" {
			src = "standard input"
		} else {
			f, err := os.Open(inputList)
			if err != nil {
				return nil, &ExitError{Code: ExitFail, Err: fmt.Errorf("reading targets: %w", err)}
			}
			defer f.Close()
			in = f
		}
		// Read line by line, bounded: -iL /dev/zero is an error, not an OOM.
		more, err := endpoint.ReadHostList(in)
		var pe *endpoint.ParseError
		if err != nil && !errors.Is(err, endpoint.ErrListTooLong) && !errors.As(err, &pe) {
			return nil, &ExitError{Code: ExitFail, Err: fmt.Errorf("-iL %s: reading targets: %w", src, err)}
		}
		if err != nil {
			return nil, usageErrorf("-iL %s: %w", src, err)
		}
		if len(more) == 0 && len(hosts) == 0 {
			return nil, usageErrorf("-iL %s: no targets in it; give one or more per line (hosts, addresses, CIDRs or ranges; '#' starts a comment)", src)
		}
		hosts = append(hosts, more...)
	}
	if len(hosts) == 0 {
		return nil, usageErrorf("no targets; give hosts, addresses, CIDRs or ranges (or -iL FILE)")
	}
	return hosts, nil
}

func scanPorts(cmd *cobra.Command, fl scanFlags) ([]uint16, error) {
	if cmd.Flags().Changed("ports") && cmd.Flags().Changed("top") {
		return nil, usageErrorf("give either -p or --top, not both")
	}
	var ports []uint16
	switch {
	case fl.ports != "":
		p, err := endpoint.ParsePorts(fl.ports)
		if err != nil {
			return nil, usageErrorf("-p: %w", err)
		}
		ports = p
	case fl.top < 0 || fl.top == 0 && cmd.Flags().Changed("top"):
		return nil, usageErrorf("--top %d: give a positive number", fl.top)
	case fl.top > scan.TopPortsLen():
		return nil, usageErrorf("--top %d: reach's list has %d ports; use -p for more (e.g. -p 1-10000 or -p-)", fl.top, scan.TopPortsLen())
	case fl.top > 0:
		ports = scan.TopPorts(fl.top)
	default:
		ports = scan.TopPorts(scan.TopPortsLen())
	}
	if fl.excludePorts != "" {
		ex, err := endpoint.ParsePorts(fl.excludePorts)
		if err != nil {
			return nil, usageErrorf("--exclude-ports: %w", err)
		}
		ports = slices.DeleteFunc(ports, func(p uint16) bool { _, found := slices.BinarySearch(ex, p); return found })
	}
	if len(ports) == 0 {
		return nil, usageErrorf("every port is excluded; nothing to scan")
	}
	return ports, nil
}

type scanRenderer struct {
	env      *Env
	fl       scanFlags
	services scan.Services
	enc      *json.Encoder
	emitted  map[netip.Addr]bool // hosts already streamed as JSON

	mu       sync.Mutex // the progress bar is drawn from another goroutine
	barShown bool
}

// scanSchema names every line of scan's --json stream, whatever its type
// (schema/reach.scan.v1.json).
const scanSchema = "reach.scan/v1"

type jsonPort struct {
	Schema string `json:"schema"` // scanSchema
	Type   string `json:"type"`
	scan.Port
	Service string `json:"service"`
}

type jsonHost struct {
	Schema string `json:"schema"` // scanSchema
	Type   string `json:"type"`
	scan.Host
}

type jsonSummary struct {
	Schema    string `json:"schema"` // scanSchema
	Type      string `json:"type"`
	Hosts     int    `json:"hosts"`
	HostsUp   int    `json:"hosts_up"`
	Discovery bool   `json:"discovery"`    // host discovery ran
	HostsOnly bool   `json:"hosts_only"`   // and the scan stopped after it
	DiscMS    int64  `json:"discovery_ms"` // how long discovery took
	// JudgedBy and Reasons count hosts by how they were judged and why:
	// {"arp": 3, "ports": 1}, {"arp-response": 3, "no-response": 253}.
	JudgedBy  map[scan.Method]int `json:"judged_by"`
	Reasons   map[string]int      `json:"reasons"`
	Ports     int                 `json:"ports_per_host"`
	Counts    scan.Counts         `json:"counts"`
	Probes    int64               `json:"probes"`
	ElapsedMS int64               `json:"elapsed_ms"`
	Rate      float64             `json:"ports_per_second"`
	Canceled  bool                `json:"canceled"`
}

func (r *scanRenderer) jsonPort(p scan.Port) {
	if p.State != scan.Open && !r.fl.allStates {
		return
	}
	r.clearProgress()
	r.enc.Encode(jsonPort{Schema: scanSchema, Type: "port", Port: p, Service: r.services.Name(p.Port)})
}

func (r *scanRenderer) jsonHost(h scan.Host) {
	r.clearProgress()
	r.emitted[h.Addr] = true
	r.enc.Encode(jsonHost{Schema: scanSchema, Type: "host", Host: h})
}

// jsonUnscanned is one record for every host the scan ended before it
// decided any port of (after an interrupt, possibly most of them).
type jsonUnscanned struct {
	Schema string   `json:"schema"` // scanSchema
	Type   string   `json:"type"`
	Hosts  int      `json:"hosts"`
	Up     int      `json:"hosts_up"` // of them, found up by discovery
	Ranges []string `json:"ranges"`   // runs of consecutive addresses, the first maxUnscannedJSON
	More   int      `json:"more_ranges"`
}

// How many ranges of unscanned hosts are listed: in JSON, and in text.
const (
	maxUnscannedJSON = 1000
	maxUnscannedText = 8
)

func countUp(hosts []scan.Host) int {
	n := 0
	for _, h := range hosts {
		if h.State == scan.HostUp {
			n++
		}
	}
	return n
}

func (r *scanRenderer) jsonEnd(rep *scan.Report) {
	s := jsonSummary{Schema: scanSchema, Type: "summary", Hosts: len(rep.Hosts), Ports: rep.Ports, Counts: rep.Counts, Probes: rep.Probes,
		ElapsedMS: rep.Elapsed.Milliseconds(), Rate: rep.Rate(), Canceled: rep.Canceled,
		Discovery: !r.fl.skipDiscovery, HostsOnly: rep.HostsOnly, DiscMS: rep.Discovery.Milliseconds(),
		JudgedBy: judgedBy(rep.Hosts), Reasons: hostReasons(rep.Hosts)}
	for _, h := range rep.Hosts {
		if h.State == scan.HostUp {
			s.HostsUp++
		}
		if !r.emitted[h.Addr] && !rep.IsUnscanned(h) {
			r.enc.Encode(jsonHost{Schema: scanSchema, Type: "host", Host: h})
		}
	}
	if u := rep.Unscanned(); len(u) > 0 {
		ranges := scan.Ranges(u)
		rec := jsonUnscanned{Schema: scanSchema, Type: "unscanned", Hosts: len(u), Up: countUp(u), Ranges: []string{}}
		for _, g := range ranges[:min(len(ranges), maxUnscannedJSON)] {
			rec.Ranges = append(rec.Ranges, g.String())
		}
		rec.More = len(ranges) - len(rec.Ranges)
		r.enc.Encode(rec)
	}
	r.enc.Encode(s)
}

// judgedBy counts hosts by the evidence that judged them.
func judgedBy(hosts []scan.Host) map[scan.Method]int {
	n := map[scan.Method]int{}
	for _, h := range hosts {
		n[h.JudgedBy]++
	}
	return n
}

// hostReasons counts hosts by their reason.
func hostReasons(hosts []scan.Host) map[string]int {
	n := map[string]int{}
	for _, h := range hosts {
		if h.Reason != "" {
			n[h.Reason]++
		}
	}
	return n
}

// judgedText says how the hosts were judged, e.g. "3 up by arp-response,
// 253 host-unreachable by no-response (arp)".
func judgedText(hosts []scan.Host) string {
	type key struct {
		state  scan.HostState
		reason string
		by     scan.Method
	}
	n := map[key]int{}
	var keys []key
	for _, h := range hosts {
		k := key{h.State, h.Reason, h.JudgedBy}
		if n[k] == 0 {
			keys = append(keys, k)
		}
		n[k]++
	}
	slices.SortStableFunc(keys, func(a, b key) int { return n[b] - n[a] }) // ties: in address order
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d %s", n[k], k.state)
		if k.reason != "" {
			parts[i] += " by " + k.reason
		}
		parts[i] += " (" + string(k.by) + ")"
	}
	return strings.Join(parts, ", ")
}

func (r *scanRenderer) text(rep *scan.Report) {
	out := r.env.Out
	up, silent := 0, 0
	var down []scan.Host
	for _, h := range rep.Hosts {
		switch {
		case h.State == scan.HostUnreachable, h.State == scan.HostNoRoute:
			down = append(down, h)
			continue
		case h.State == scan.HostNoAnswer && rep.HostsOnly:
			// Only after --hosts-only: one line, like the unreachable.
			silent++
			down = append(down, h)
			continue
		case h.State == scan.HostUp:
			up++
		}
		if !rep.IsUnscanned(h) {
			r.hostText(h)
		}
	}
	r.downText(down)
	r.unscannedText(rep.Unscanned())
	if len(rep.Hosts) > 0 {
		fmt.Fprintf(out, "\nHosts judged: %s", judgedText(rep.Hosts))
		if rep.Discovery > 0 {
			fmt.Fprintf(out, "; discovery took %.2fs", rep.Discovery.Seconds())
		}
		fmt.Fprintln(out)
	}
	perSecond := rep.Rate()
	rateText := thousands(int64(perSecond))
	if perSecond < 10 {
		rateText = strconv.FormatFloat(perSecond, 'g', 2, 64) // not "0" for a slow scan
	}
	if rep.HostsOnly {
		fmt.Fprintf(out, "\nDiscovered %s (%d up, %d unreachable, %d silent) in %.2fs (no port scan: --hosts-only)\n",
			plural(len(rep.Hosts), "host"), up, len(down)-silent, silent, rep.Elapsed.Seconds())
		return
	}
	fmt.Fprintf(out, "\nScanned %s on %s (%d up, %d unreachable) in %.2fs (%s ports/s)",
		plural(rep.Ports, "port"), plural(len(rep.Hosts), "host"), up, len(down), rep.Elapsed.Seconds(), rateText)
	if rep.Canceled {
		fmt.Fprintf(out, " (interrupted: %s of %s decided; partial results)", thousands(rep.Settled()), thousands(int64(rep.Ports)*int64(len(rep.Hosts))))
	}
	fmt.Fprintln(out)
}

// unscannedText gives the hosts the scan ended before it decided any port
// of one line, not a block each (an interrupted /12 printed 762,107 "Host
// state unknown" blocks).
func (r *scanRenderer) unscannedText(u []scan.Host) {
	if len(u) == 0 {
		return
	}
	ranges := scan.Ranges(u)
	shown := make([]string, 0, maxUnscannedText)
	for _, g := range ranges[:min(len(ranges), maxUnscannedText)] {
		shown = append(shown, g.String())
	}
	more := ""
	switch n := len(ranges) - len(shown); {
	case n == 1:
		more = " and 1 more range"
	case n > 1:
		more = fmt.Sprintf(" and %s more ranges", thousands(int64(n)))
	}
	up := ""
	if n := countUp(u); n > 0 {
		up = fmt.Sprintf(" (%s found up)", thousands(int64(n)))
	}
	fmt.Fprintf(r.env.Out, "\nNo port decided before the scan ended: %s%s: %s%s\n",
		plural(len(u), "host"), up, strings.Join(shown, ", "), more)
}

func (r *scanRenderer) hostText(h scan.Host) {
	out := r.env.Out
	name := h.Addr.String()
	if h.Name != "" {
		name = fmt.Sprintf("%s (%s)", h.Name, h.Addr)
	}
	fmt.Fprintf(out, "\nreach scan report for %s\n", name)
	switch h.State {
	case scan.HostUp:
		fmt.Fprintf(out, "Host is up, %s (%s) (%.6fs latency).\n", h.Reason, h.JudgedBy, h.SRTT.Seconds())
	case scan.HostNoAnswer:
		fmt.Fprintln(out, "Host did not answer on any port: it may be down, or a firewall drops everything.")
	case scan.HostUnknown:
		fmt.Fprintln(out, "Host state unknown: the scan ended before it answered.")
	case scan.HostLocalError:
		fmt.Fprintf(out, "Nothing was sent: this machine's own routes or firewall refused every probe (see the reasons; check ip route get %s).\n", h.Addr)
	}
	byState := map[scan.State][]scan.Port{}
	for _, p := range h.Ports {
		byState[p.State] = append(byState[p.State], p)
	}
	var shown []scan.Port
	var hidden []string
	for _, st := range []scan.State{scan.Open, scan.Closed, scan.Filtered} {
		ps := byState[st]
		if st == scan.Open || r.fl.allStates || len(ps) <= showLimit {
			shown = append(shown, ps...)
			continue
		}
		hidden = append(hidden, fmt.Sprintf("%s %s tcp ports (%s)", thousands(int64(len(ps))), st, reasonSummary(ps)))
	}
	if len(hidden) > 0 {
		fmt.Fprintf(out, "Not shown: %s\n", strings.Join(hidden, ", "))
	}
	if len(shown) == 0 {
		if len(h.Ports) > 0 {
			fmt.Fprintln(out, "No open ports.")
		}
		return
	}
	slices.SortFunc(shown, func(a, b scan.Port) int { return int(a.Port) - int(b.Port) })
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	if r.fl.reason {
		fmt.Fprintln(tw, "PORT\tSTATE\tSERVICE\tREASON")
	} else {
		fmt.Fprintln(tw, "PORT\tSTATE\tSERVICE")
	}
	for _, p := range shown {
		fmt.Fprintf(tw, "%d/tcp\t%s\t%s", p.Port, p.State, r.services.Name(p.Port))
		if r.fl.reason {
			fmt.Fprintf(tw, "\t%s", reasonText(p))
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

func reasonText(p scan.Port) string {
	switch {
	case p.From.IsValid():
		return fmt.Sprintf("%s from %s", p.Reason, p.From)
	case p.Class == probe.LocalError && p.Errno != 0:
		return fmt.Sprintf("%s (%v)", p.Reason, p.Errno) // which local error: the fix differs
	}
	return p.Reason
}

// reasonSummary names the reasons of a group of ports, most common first.
func reasonSummary(ps []scan.Port) string {
	n := map[string]int{}
	for _, p := range ps {
		n[p.Reason]++
	}
	keys := make([]string, 0, len(n))
	for k := range n {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return n[b] - n[a] })
	if len(keys) == 1 {
		return keys[0]
	}
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %s", thousands(int64(n[k])), k)
	}
	return strings.Join(parts, ", ")
}

// downText lists unreachable hosts compactly: consecutive addresses with the
// same state and reason share a line.
func (r *scanRenderer) downText(down []scan.Host) {
	out := r.env.Out
	for i := 0; i < len(down); {
		j := i
		for j+1 < len(down) && down[j+1].State == down[i].State && down[j+1].Reason == down[i].Reason &&
			down[j+1].JudgedBy == down[i].JudgedBy &&
			down[j+1].Name == "" && down[i].Name == "" && down[j].Addr.Next() == down[j+1].Addr {
			j++
		}
		what := down[i].Addr.String()
		if down[i].Name != "" {
			what = fmt.Sprintf("%s (%s)", down[i].Name, down[i].Addr)
		}
		if j > i {
			what = fmt.Sprintf("%s-%s (%d hosts)", down[i].Addr, down[j].Addr, j-i+1)
		}
		evidence := down[i].Evidence
		if j > i {
			evidence = "e.g. " + evidence
		}
		fmt.Fprintf(out, "\nreach scan report for %s: %s (%s); %s, judged by %s\n", what, down[i].State, evidence, down[i].Reason, down[i].JudgedBy)
		i = j + 1
	}
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return thousands(int64(n)) + " " + word + "s"
}

func thousands(n int64) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func (r *scanRenderer) progress(p scan.Progress) {
	if p.Total == 0 {
		return
	}
	frac := float64(p.Done) / float64(p.Total)
	const width = 30
	bar := strings.Repeat("=", int(frac*width)) + strings.Repeat(" ", width-int(frac*width))
	eta := "?"
	if p.Done > 0 {
		eta = (time.Duration(float64(p.Elapsed) * (1 - frac) / frac)).Round(100 * time.Millisecond).String()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	what := "ports"
	if p.Phase == scan.PhaseDiscovery {
		what = "hosts"
	}
	fmt.Fprintf(r.env.Err, "\r%-9s [%s] %3.0f%%  %s/%s %s  ETA %s ", p.Phase, bar, 100*frac, thousands(p.Done), thousands(p.Total), what, eta)
	r.barShown = true
}

func (r *scanRenderer) clearProgress() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.barShown {
		fmt.Fprintf(r.env.Err, "\r%s\r", strings.Repeat(" ", 78))
		r.barShown = false
	}
}
