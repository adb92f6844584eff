package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

func init() { register("grpc", GRPC) }

// errConnUsed ends gRPC's attempts to reconnect: a check has one connection.
var errConnUsed = errors.New("the check's one connection was used and ended")

// GRPC asks the standard health service (grpc.health.v1.Health/Check) over
// conn with google.golang.org/grpc, for req.Service (empty: the server as a
// whole). SERVING is Ready; NOT_SERVING and UNKNOWN are NotReady; a service
// the server does not know, a server without the health service, or any
// other error status is AppError; a peer that answers the HTTP/2 preface in
// HTTP/1 or in TLS is WrongProtocol. gRPC's transport owns conn: it is
// closed when the check ends. FirstByte is the time to the server's first
// bytes (its HTTP/2 settings).
func GRPC(ctx context.Context, conn net.Conn, req Request) (Result, error) {
	var r Result
	rec := &recorder{Conn: conn, start: time.Now()}
	var used atomic.Bool
	dial := func(context.Context, string) (net.Conn, error) {
		if used.Swap(true) {
			return nil, errConnUsed
		}
		return rec, nil
	}
	authority := req.Host
	if req.Addr.IsValid() {
		if authority == "" {
			authority = req.Addr.Addr().String()
		}
		authority = net.JoinHostPort(authority, fmt.Sprint(req.Addr.Port()))
	}
	if authority == "" {
		authority = "localhost"
	}
	cc, err := grpc.NewClient("passthrough:///"+authority, grpc.WithContextDialer(dial),
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority(authority),
		grpc.WithDisableRetry(), grpc.WithUserAgent("reach"))
	if err != nil {
		return r, err
	}
	defer cc.Close()
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: req.Service})
	first, seen := rec.first()
	r.FirstByte = seen
	svc := "the server"
	if req.Service != "" {
		svc = fmt.Sprintf("service %q", req.Service)
	}
	if err == nil {
		r.State = resp.GetStatus().String()
		switch resp.GetStatus() {
		case healthpb.HealthCheckResponse_SERVING:
			r.Ready, r.Detail = true, svc+" is SERVING"
		case healthpb.HealthCheckResponse_SERVICE_UNKNOWN:
			r.Cause, r.Detail = AppError, "the health service does not know "+svc
		default:
			r.Cause, r.Detail = NotReady, fmt.Sprintf("%s is %s", svc, r.State)
		}
		return r, nil
	}
	st := status.Convert(err)
	r.State = st.Code().String()
	switch st.Code() {
	case codes.NotFound:
		r.Cause, r.Detail = AppError, fmt.Sprintf("the health service does not know %s (NotFound: %s)", svc, st.Message())
		return r, nil
	case codes.Unimplemented:
		r.Cause, r.Detail = AppError, "the server has no grpc.health.v1.Health service (Unimplemented): "+
			"register it (google.golang.org/grpc/health) or check the port"
		return r, nil
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.Internal:
		if k := Sniff(first); k != KindUnknown && k != KindHTTP2 {
			r.Cause, r.State = WrongProtocol, string(k)
			r.Detail = (&wrongProtocolError{kind: k, first: first, asked: "gRPC (HTTP/2)"}).Error()
			return r, nil
		}
		if st.Code() != codes.Internal {
			switch {
			case len(first) == 0 && ctx.Err() != nil:
				return r, fmt.Errorf("no answer to the HTTP/2 preface: %w", ctx.Err())
			case len(first) == 0 && strings.Contains(st.Message(), "EOF"):
				// Go's TLS servers, gRPC's among them, close a plain
				// connection without a word: say what that may be.
				return r, fmt.Errorf("the server closed the connection without answering the HTTP/2 "+
					"preface (a TLS port does so: for TLS, use grpcs://): %w", io.EOF)
			}
			return r, fmt.Errorf("%s: %s: %w", st.Code(), st.Message(), transportErr(st.Message()))
		}
	}
	r.Cause, r.Detail = AppError, fmt.Sprintf("the health check failed: %s: %s", st.Code(), st.Message())
	return r, nil
}

// recorder keeps the first bytes read from a connection and when they came.
type recorder struct {
	net.Conn
	start time.Time
	mu    sync.Mutex
	buf   []byte
	at    time.Duration
}

func (c *recorder) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.mu.Lock()
		if c.at == 0 {
			c.at = time.Since(c.start)
		}
		if room := 64 - len(c.buf); room > 0 {
			c.buf = append(c.buf, b[:min(n, room)]...)
		}
		c.mu.Unlock()
	}
	return n, err
}

func (c *recorder) first() ([]byte, time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.buf...), c.at
}

// transportErr is the I/O error a gRPC status message names (the
// transport reports it as text only), so callers can classify it.
func transportErr(msg string) error {
	switch {
	case strings.Contains(msg, "connection reset"):
		return syscall.ECONNRESET
	case strings.Contains(msg, "broken pipe"):
		return syscall.EPIPE
	case strings.Contains(msg, "EOF"):
		return io.EOF
	case strings.Contains(msg, "timeout"), strings.Contains(msg, "deadline"):
		return os.ErrDeadlineExceeded
	}
	return errors.New("connection error")
}
