package httpsafe

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"
)

// Body wraps h so that no request body is read beyond max bytes: a larger
// declared one is refused with 413 before h runs, and h's reads stop at max
// with an *http.MaxBytesError (answer it with 413, see TooLarge). A response
// whose body was not read to its end (a 401, a 405, a 413, or a handler
// that ignores the body) closes the connection instead of waiting, as
// net/http otherwise would (without a deadline but the read timeout), for
// the client to send the rest of it.
func Body(h http.Handler, max int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > max {
			w.Header().Set("Connection", "close")
			http.Error(w, fmt.Sprintf("request body too large: %d bytes declared, this server reads "+
				"at most %d", r.ContentLength, max), http.StatusRequestEntityTooLarge)
			return
		}
		if r.ContentLength == 0 {
			h.ServeHTTP(w, r)
			return
		}
		body := &eofReader{ReadCloser: http.MaxBytesReader(w, r.Body, max), want: r.ContentLength}
		r.Body = body
		cw := &closeWriter{ResponseWriter: w, body: body}
		h.ServeHTTP(cw, r)
		cw.before() // a handler that wrote nothing: the server answers after we return
		if !body.complete() {
			// After the answer, net/http reads what is left of the body
			// (up to 256 KiB) to reuse the connection: make that read fail
			// at once, so the connection closes instead.
			_ = http.NewResponseController(w).SetReadDeadline(time.Now())
		}
	})
}

// TooLarge reports whether err is a read past Body's limit, and then
// answers 413 on w with a message that says the limit.
func TooLarge(w http.ResponseWriter, err error) bool {
	var mb *http.MaxBytesError
	if !errors.As(err, &mb) {
		return false
	}
	http.Error(w, fmt.Sprintf("request body too large: this server reads at most %d bytes", mb.Limit),
		http.StatusRequestEntityTooLarge)
	return true
}

// eofReader notes whether the body was read to its end: to EOF, or to
// the declared length (a JSON decoder stops at the value's end).
type eofReader struct {
	io.ReadCloser
	want int64 // declared length; -1 when unknown
	read atomic.Int64
	eof  atomic.Bool
}

func (b *eofReader) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.read.Add(int64(n))
	if err == io.EOF {
		b.eof.Store(true)
	}
	return n, err
}

func (b *eofReader) complete() bool {
	return b.eof.Load() || (b.want > 0 && b.read.Load() >= b.want)
}

// closeWriter asks for the connection to be closed when the answer starts
// before the body was read.
type closeWriter struct {
	http.ResponseWriter
	body  *eofReader
	wrote bool
}

func (c *closeWriter) before() {
	if c.wrote {
		return
	}
	c.wrote = true
	if !c.body.complete() {
		c.Header().Set("Connection", "close")
	}
}

func (c *closeWriter) WriteHeader(code int) {
	c.before()
	c.ResponseWriter.WriteHeader(code)
}

func (c *closeWriter) Write(p []byte) (int, error) {
	c.before()
	return c.ResponseWriter.Write(p)
}

// Flush lets streaming handlers flush through the wrapper.
func (c *closeWriter) Flush() {
	c.before()
	_ = http.NewResponseController(c.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the server's writer.
func (c *closeWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }
