package cli

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/reach-tools/reach/internal/httpsafe"
)

// httpFlags bound the HTTP server of reach watch and reach agent against
// slow and greedy clients.
type httpFlags struct {
	read, write, idle   time.Duration
	maxConns, perClient int
}

func (f *httpFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.DurationVar(&f.read, "read-timeout", httpsafe.DefaultReadTimeout,
		"HTTP: longest a client may take to send a request, body included")
	fl.DurationVar(&f.write, "write-timeout", httpsafe.DefaultWriteTimeout,
		"HTTP: longest a response may take (live-update streams bound each write instead)")
	fl.DurationVar(&f.idle, "idle-timeout", httpsafe.DefaultIdleTimeout,
		"HTTP: how long a kept-alive connection may wait for its next request")
	fl.IntVar(&f.maxConns, "max-conns", 0,
		"HTTP: open connections at most; more are closed at once (0: from the file limit, "+
			"leaving descriptors for the probes)")
	fl.IntVar(&f.perClient, "max-conns-per-client", 0,
		"HTTP: open connections at most from one client, an IPv4 address or IPv6 /64 (0: a quarter of --max-conns, at most 64)")
}

// options checks the flags and returns them as server options.
func (f *httpFlags) options() (httpsafe.Options, error) {
	if err := mustBePositive(durationFlag{"read-timeout", f.read},
		durationFlag{"write-timeout", f.write}, durationFlag{"idle-timeout", f.idle}); err != nil {
		return httpsafe.Options{}, err
	}
	if f.maxConns < 0 || f.perClient < 0 {
		return httpsafe.Options{}, usageErrorf("--max-conns %d, --max-conns-per-client %d: "+
			"give a number of connections, or 0 to derive it from the file limit", f.maxConns, f.perClient)
	}
	return httpsafe.Options{ReadTimeout: f.read, WriteTimeout: f.write, IdleTimeout: f.idle,
		MaxConns: f.maxConns, MaxConnsPerClient: f.perClient}, nil
}
