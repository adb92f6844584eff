package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/reach-tools/reach/app"
	"github.com/reach-tools/reach/dial"
	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/probe"
)

func init() { register("connect", newConnectCmd) }

func newConnectCmd(env *Env) *cobra.Command {
	var (
		policy                             string
		attemptDelay, timeout, backoffMax  time.Duration
		retries                            int
		probeOnly, asJSON, quiet, readWait bool
		verbose                            bool
		local                              localFlags
		layerOpt                           layerFlags
	)
	cmd := &cobra.Command{
		Use:   "connect TARGET...",
		Short: "Connect to the first endpoint that accepts and pipe stdin/stdout through it (like nc)",
		Long: `Connect dials the targets with reach's dialer (failover, retries with backoff,
or racing) and then copies standard input to the connection and the
connection to standard output, like nc. End of input half-closes the
connection; the command ends when the server closes its side.

Each failed attempt is reported on stderr with its class (refused, timeout,
host-unreachable, ...), then the endpoint used. If no endpoint accepts, each
one's last class is explained and the exit status is 1.

Policies:
  ordered      try the targets in the order given (default)
  round-robin  start at the next target on each retry round
  random       a fresh random order each round
  race         start the next target every --attempt-delay without waiting
               for the last to fail (RFC 8305); the first to connect wins

--source ADDR leaves from that address of this host (a name then stands for
its addresses of that family); --interface NAME leaves by that interface,
whatever the routes prefer: "it works from this address, not that one".

--json prints one JSON object, one line (schema reach.connect/v1; on stdout
with -z, else on stderr): connected,
endpoint and addr (the winner), local, elapsed_ms, attempts[] (attempt,
round, endpoint, addr, class, errno, rtt_ms, error, icmp: the ICMP error
behind a failure, ejected), and on failure failed[] (endpoint, addr, class,
explain, hint) and error.

A tls://HOST[:PORT] target adds a TLS handshake once TCP connects (all
targets tls://, or none): the chain is verified against the system's roots
or --ca FILE, the certificate against the host or --sni NAME; --cert and
--key give a client certificate; --insecure SKIPS verification (and still
says what it would have failed). The data then flows inside TLS, like
openssl s_client. A TLS failure (tls-expired, tls-untrusted,
tls-name-mismatch, tls-failed, wrong-protocol) is explained, exit status 1.

Exit status: 0 connected, 1 no target accepted, 2 usage error.`,
		Example: `  printf hello | reach connect 127.0.0.1:7000          # talk to an echo server
  reach connect db1:5432 db2:5432 -z                   # which one accepts? no data
  reach connect 198.18.0.2:80 198.18.1.2:80 --policy race --attempt-delay 100ms -z
  reach connect 127.0.0.1:7000 --retries 5 --backoff-max 10s   # wait out a restart
  reach connect db1:5432 db2:5432 -z --json | jq .endpoint
  reach connect 198.18.0.2:80 -z --source 198.18.1.1   # from this host's other address
  reach connect 198.18.0.2:80 -z --interface eth1      # out of eth1, whatever the routes say
  reach connect tls://127.0.0.1:8443 --ca ca.pem       # TLS, verified; then type HTTP by hand
  reach connect tls://db:5432 --sni db.internal --cert me.pem --key me-key.pem -z`,
		Args: minArgs("connect to"),
		RunE: func(cmd *cobra.Command, args []string) error {
			targets, err := endpoint.ParseTargets(args)
			if err != nil {
				return &UsageError{Err: err}
			}
			eps, tlsOpts, err := connectTargets(targets, &layerOpt)
			if err != nil {
				return err
			}
			pol, err := dial.ParsePolicy(policy)
			if err != nil {
				return &UsageError{Err: err}
			}
			if err := mustBePositive(durationFlag{"timeout", timeout}, durationFlag{"attempt-delay", attemptDelay}, durationFlag{"backoff-max", backoffMax}); err != nil {
				return err
			}
			if retries < -1 {
				return usageErrorf("--retries %d: give 0 or more rounds, or -1 to retry until interrupted", retries)
			}
			source, iface, err := local.parse("tcp", true)
			if err != nil {
				return err
			}
			if err := sameFamily(source, eps); err != nil {
				return err
			}
			rep := &connectReport{}
			opt := dial.Options{
				Policy:       pol,
				AttemptDelay: attemptDelay,
				Timeout:      timeout,
				Retries:      retries,
				Backoff:      dial.Backoff{Max: backoffMax},
				Source:       source,
				Interface:    iface,
				// One dial per run: every round should try every target,
				// so no endpoint is ejected between rounds.
				Eject: dial.Ejection{Consecutive: -1},
				OnAttempt: func(a dial.Attempt) {
					rep.add(a)
					if !quiet && !asJSON && !verbose && a.Class != probe.Open && a.Class != probe.Canceled {
						fmt.Fprintf(env.Err, "reach: attempt %d: %s: %s%s (%s)\n", a.N, a.Label(), a.Class, byICMP(a.Err), fmtDuration(a.RTT))
					}
				},
				OnRetry: func(round int, wait time.Duration) {
					if !quiet && !asJSON {
						fmt.Fprintf(env.Err, "reach: round %d failed; next round in %s\n", round+1, fmtDuration(wait))
					}
				},
			}
			if readWait {
				opt.ReadWait = 200 * time.Millisecond
			}
			if verbose {
				opt.Logger = slog.New(slog.NewTextHandler(env.Err, &slog.HandlerOptions{Level: slog.LevelDebug}))
			}
			start := time.Now()
			conn, err := dial.New(eps, opt).DialContext(cmd.Context())
			rep.Elapsed = time.Since(start)
			report := env.Err // the data stream owns stdout unless we only probe
			if probeOnly {
				report = env.Out
			}
			if err != nil {
				rep.fail(err)
				if asJSON {
					writeConnectJSON(report, rep)
				}
				if !asJSON {
					explainConnectFailure(env, err)
				}
				return &ExitError{Code: ExitFail}
			}
			defer conn.Close()
			rep.connected(conn)
			if tlsOpts != nil {
				// The winner's TLS layer, verified against the name given.
				name := rep.winnerEP
				if name.Host == "" {
					name = endpoint.FromAddrPort(addrPortOf(conn.RemoteAddr()))
				}
				up, r := probe.Upgrade(cmd.Context(), conn, name, probe.Options{Timeout: timeout, TLS: tlsOpts[name.String()]})
				rep.TLS = r.TLS
				if up == nil {
					layer, cause, detail := r.Layer()
					if cause == "" {
						cause = app.Cause(r.Class)
					}
					rep.Error = fmt.Sprintf("%s: %s layer: %s: %s", rep.Endpoint, layer, cause, detail)
					if asJSON {
						writeConnectJSON(report, rep)
					} else {
						fmt.Fprintf(env.Err, "reach: connected to %s, but %s\n", rep.Endpoint, rep.Error[len(rep.Endpoint)+2:])
					}
					return &ExitError{Code: ExitFail}
				}
				conn = up
				defer conn.Close()
				if !quiet && !asJSON {
					fmt.Fprintf(env.Err, "reach: %s with %s in %s\n", describeTLS(r.TLS), rep.Endpoint, fmtDuration(r.TLS.Handshake))
				}
			}
			switch {
			case asJSON:
				writeConnectJSON(report, rep)
			case !quiet:
				fmt.Fprintf(env.Err, "reach: connected to %s in %s (attempt %d)\n", rep.Endpoint, fmtDuration(rep.Elapsed), rep.winner)
			}
			if probeOnly {
				return nil
			}
			if err := pipeConn(cmd.Context(), conn, env.In, env.Out); err != nil {
				return &ExitError{Code: ExitFail, Err: fmt.Errorf("connection to %s: %w", rep.Endpoint, err)}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&policy, "policy", "ordered", "ordered | round-robin | random | race")
	f.DurationVar(&attemptDelay, "attempt-delay", dial.DefaultAttemptDelay, "race: start the next target after this long")
	f.DurationVar(&timeout, "timeout", probe.DefaultTimeout, "bound on each attempt")
	f.IntVar(&retries, "retries", 0, "retry rounds after the first fails (-1: until interrupted)")
	f.DurationVar(&backoffMax, "backoff-max", dial.DefaultBackoffMax, "longest pause between rounds (backoff starts at 1s, ×1.6, ±20%)")
	f.BoolVarP(&probeOnly, "probe-only", "z", false, "connect, report and close: no data is sent")
	f.BoolVar(&asJSON, "json", false, "report the attempts as JSON (on stdout with -z, else on stderr)")
	f.BoolVarP(&quiet, "quiet", "q", false, "do not report attempts; failures are still explained")
	f.BoolVarP(&verbose, "verbose", "v", false, "log every attempt (endpoint, class, errno, rtt, attempt) as structured records on stderr")
	local.add(f)
	layerOpt.addTLS(f)
	f.BoolVar(&readWait, "check-accept", false, "after connecting, wait 200ms for the server to reset or close (servers that accept and drop) and fail over if it does")
	return cmd
}

// pipeConn copies in to conn and conn to out until the server closes. End of
// input half-closes the connection so the server sees EOF and can answer.
// The context closes the connection.
func pipeConn(ctx context.Context, conn net.Conn, in io.Reader, out io.Writer) error {
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	go func() {
		// This goroutine may outlive the call while blocked reading a
		// terminal; the process ends right after.
		if _, err := io.Copy(conn, in); err == nil {
			if cw, ok := conn.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			}
		}
	}()
	_, err := io.Copy(out, conn)
	if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
		return nil
	}
	if err != nil {
		c, _ := probe.Classify(err)
		return fmt.Errorf("%s: %w", c, err)
	}
	return nil
}

// explainConnectFailure prints each endpoint's last class, what it means, and
// what to run next.
func explainConnectFailure(env *Env, err error) {
	var de *dial.Error
	if !errors.As(err, &de) || len(de.Last) == 0 {
		fmt.Fprintf(env.Err, "reach: %v\n", err)
		return
	}
	for _, a := range de.Last {
		ejected := ""
		if a.Ejected {
			ejected = " (ejected)"
		}
		fmt.Fprintf(env.Err, "reach: connect %s: %s%s%s — %s; try: reach check %s\n", a.Label(), a.Class, byICMP(a.Err), ejected, a.Class.Explain(), a.Endpoint)
	}
	switch {
	case errors.Is(de.Err, context.Canceled):
		fmt.Fprintf(env.Err, "reach: interrupted after %s\n", plural(de.Attempts, "attempt"))
	case de.Err != nil:
		fmt.Fprintf(env.Err, "reach: gave up after %s: %v\n", plural(de.Attempts, "attempt"), de.Err)
	}
}

// byICMP names the ICMP error behind a failed attempt, when one came: a
// refusal by a firewall's port-unreachable reads apart from a reset.
func byICMP(err error) string {
	if m := icmpOf(err); m != nil {
		return " by " + m.String()
	}
	return ""
}

func icmpOf(err error) *probe.ICMP {
	var pe *probe.Error
	if errors.As(err, &pe) {
		return pe.ICMP
	}
	return nil
}

// connectSchema names connect's --json object (schema/reach.connect.v1.json).
const connectSchema = "reach.connect/v1"

// connectReport is what connect saw, for --json and the summary line.
type connectReport struct {
	mu        sync.Mutex
	Schema    string          `json:"schema"` // connectSchema
	Connected bool            `json:"connected"`
	Endpoint  string          `json:"endpoint,omitempty"`
	Addr      string          `json:"addr,omitempty"`
	Local     string          `json:"local,omitempty"`
	Elapsed   time.Duration   `json:"-"`
	ElapsedMS float64         `json:"elapsed_ms"`
	Attempts  []attemptJSON   `json:"attempts"`
	Failed    []endpointState `json:"failed,omitempty"`
	Error     string          `json:"error,omitempty"`
	// TLS is the winner's TLS layer, for tls:// targets.
	TLS      *probe.TLSResult  `json:"tls,omitempty"`
	winner   int               // the connected attempt's number
	winnerEP endpoint.Endpoint // and its endpoint
}

// attemptJSON is one dial.Attempt as data.
type attemptJSON struct {
	N        int     `json:"attempt"`
	Round    int     `json:"round"`
	Endpoint string  `json:"endpoint"`
	Addr     string  `json:"addr,omitempty"`
	Class    string  `json:"class"`
	Errno    int     `json:"errno,omitempty"`
	RTTMS    float64 `json:"rtt_ms"`
	Error    string  `json:"error,omitempty"`
	ICMP     string  `json:"icmp,omitempty"` // the ICMP error behind the failure, e.g. "ICMP port-unreachable from 198.18.0.2"
	Ejected  bool    `json:"ejected,omitempty"`
	label    string
	ep       endpoint.Endpoint
}

// endpointState is an endpoint's last outcome with its explanation.
type endpointState struct {
	Endpoint string `json:"endpoint"`
	Addr     string `json:"addr,omitempty"`
	Class    string `json:"class"`
	Explain  string `json:"explain"`
	Hint     string `json:"hint"`
}

func newAttemptJSON(a dial.Attempt) attemptJSON {
	j := attemptJSON{N: a.N, Round: a.Round, Endpoint: a.Endpoint.String(), Class: a.Class.String(),
		Errno: int(a.Errno), RTTMS: ms(a.RTT), Ejected: a.Ejected, label: a.Label(), ep: a.Endpoint}
	if a.Addr.IsValid() {
		j.Addr = a.Addr.String()
	}
	if a.Err != nil {
		j.Error = a.Err.Error()
	}
	if m := icmpOf(a.Err); m != nil {
		j.ICMP = m.String()
	}
	return j
}

func newEndpointState(a dial.Attempt) endpointState {
	s := endpointState{Endpoint: a.Endpoint.String(), Class: a.Class.String(), Explain: a.Class.Explain(),
		Hint: "reach check " + a.Endpoint.String()}
	if a.Addr.IsValid() {
		s.Addr = a.Addr.String()
	}
	return s
}

func (r *connectReport) add(a dial.Attempt) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Attempts = append(r.Attempts, newAttemptJSON(a))
}

func (r *connectReport) connected(conn net.Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Connected = true
	remote := addrPortOf(conn.RemoteAddr())
	for _, a := range r.Attempts {
		if a.Class == probe.Open.String() && a.Addr == remote.String() {
			r.Endpoint, r.Addr, r.winner, r.winnerEP = a.label, a.Addr, a.N, a.ep
		}
	}
	if r.Endpoint == "" {
		r.Endpoint, r.Addr = remote.String(), remote.String()
	}
	r.Local = addrPortOf(conn.LocalAddr()).String()
	r.ElapsedMS = ms(r.Elapsed)
}

func (r *connectReport) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Error = err.Error()
	r.ElapsedMS = ms(r.Elapsed)
	var de *dial.Error
	if errors.As(err, &de) {
		for _, a := range de.Last {
			r.Failed = append(r.Failed, newEndpointState(a))
		}
	}
}

func writeConnectJSON(w io.Writer, r *connectReport) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Schema = connectSchema
	if r.Attempts == nil {
		r.Attempts = []attemptJSON{}
	}
	json.NewEncoder(w).Encode(r) // one line
}

func addrPortOf(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// fmtDuration rounds a duration for people: 312µs, 4.2ms, 1.25s.
func fmtDuration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(100 * time.Microsecond).String()
	}
	return d.Round(10 * time.Millisecond).String()
}

// connectTargets are connect's endpoints and, when they are tls://, each
// one's TLS options by its host:port; every target is tls:// or none is.
func connectTargets(targets []endpoint.Target, f *layerFlags) ([]endpoint.Endpoint, map[string]*probe.TLSOptions, error) {
	if err := f.check(targets); err != nil {
		return nil, nil, err
	}
	eps := make([]endpoint.Endpoint, len(targets))
	var opts map[string]*probe.TLSOptions
	for i, t := range targets {
		eps[i] = t.Endpoint
		switch t.Scheme {
		case "tcp":
		case "tls":
			if opts == nil {
				opts = map[string]*probe.TLSOptions{}
			}
			o, _, err := f.layers(t)
			if err != nil {
				return nil, nil, err
			}
			opts[t.Endpoint.String()] = o
		default:
			return nil, nil, usageErrorf("%s: connect takes host:port, tcp:// or tls:// (it pipes bytes; "+
				"for %s:// readiness, use reach check or reach wait)", t, t.Scheme)
		}
	}
	if opts != nil && len(opts) < len(targets) {
		return nil, nil, usageErrorf("mix of tls:// and plain targets: give every target as tls://, or none")
	}
	return eps, opts, nil
}
