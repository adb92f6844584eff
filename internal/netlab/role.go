package netlab

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The processes a lab runs inside its hosts (a container's server, a
// docker-proxy) are the test binary itself, started again through a
// symbolic link named after the role. The kernel names a process after the
// file it was started by, so /proc/PID/comm says "docker-proxy", and
// /proc/PID/cmdline carries the role's arguments (docker-proxy's own flags):
// what the doctor reads to recognise them.

// roleEnv holds the role a test binary was started for; see runRole.
const roleEnv = "REACH_NETLAB_ROLE"

// The roles.
const (
	roleServer = "netlab-server" // a container's server: banner, then echo
	roleProxy  = "docker-proxy"  // forwards a host port to a container's port
)

func init() {
	role := os.Getenv(roleEnv)
	if role == "" || role != filepath.Base(os.Args[0]) {
		return
	}
	// Never returns: a role serves until the lab kills it (by pid, or by
	// the parent-death signal when the test binary dies).
	runRole(role, os.Args[1:], os.Stdout)
}

// runRole sets the role up, writes "ready" or "error: WHY" as one line to
// status and then serves for ever. It never exits by itself, so a failed
// role stays until the lab, having read why, kills it.
func runRole(role string, args []string, status io.Writer) {
	var err error
	switch role {
	case roleServer:
		err = serveRole(args)
	case roleProxy:
		err = proxyRole(args)
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err != nil {
		fmt.Fprintf(status, "error: %v\n", err)
	} else {
		fmt.Fprintln(status, "ready")
	}
	for {
		time.Sleep(time.Hour)
	}
}

// serveRole listens on every -listen address and, on each connection,
// writes "NAME LOCAL from REMOTE\n" and echoes what it reads, so a test
// learns which server, and which of its addresses, the kernel delivered it
// to, and from which source address after any translation.
func serveRole(args []string) error {
	fs := flag.NewFlagSet(roleServer, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	name := fs.String("name", "", "what the banner calls this server")
	var addrs []string
	fs.Func("listen", "address to listen on (repeatable)", func(s string) error {
		addrs = append(addrs, s)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return err
		}
		go acceptLoop(ln, func(c net.Conn) {
			defer c.Close()
			fmt.Fprintf(c, "%s %s from %s\n", *name, c.LocalAddr(), c.RemoteAddr())
			_, _ = io.Copy(c, c)
		})
	}
	return nil
}

// proxyRole is docker-proxy: it takes docker-proxy's flags and forwards
// each connection to the container's address. When the container does not
// answer, it closes the connection it accepted, as docker-proxy does.
func proxyRole(args []string) error {
	fs := flag.NewFlagSet(roleProxy, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	proto := fs.String("proto", "tcp", "")
	hostIP := fs.String("host-ip", "", "")
	hostPort := fs.Int("host-port", 0, "")
	ctrIP := fs.String("container-ip", "", "")
	ctrPort := fs.Int("container-port", 0, "")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *proto != "tcp" {
		return fmt.Errorf("-proto %s: only tcp", *proto)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(*hostIP, fmt.Sprint(*hostPort)))
	if err != nil {
		return err
	}
	backend := net.JoinHostPort(*ctrIP, fmt.Sprint(*ctrPort))
	go acceptLoop(ln, func(c net.Conn) {
		defer c.Close()
		b, err := net.DialTimeout("tcp", backend, 10*time.Second)
		if err != nil {
			return
		}
		defer b.Close()
		done := make(chan struct{})
		go func() {
			_, _ = io.Copy(b, c)
			_ = b.(*net.TCPConn).CloseWrite()
			close(done)
		}()
		_, _ = io.Copy(c, b)
		_ = c.(*net.TCPConn).CloseWrite()
		<-done
	})
	return nil
}

func acceptLoop(ln net.Listener, handle func(net.Conn)) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // EMFILE and the like
			continue
		}
		go handle(c)
	}
}

// Process is a role process a lab runs inside one of its hosts.
type Process struct {
	Host *Host
	Name string   // what /proc/PID/comm says: "docker-proxy", "netlab-server"
	Args []string // its arguments, as in /proc/PID/cmdline after the name
	Pid  int
}

// startRole runs role in h with args and waits (bounded) until it says it
// is ready. It is killed when t's test ends or the lab is cleaned up.
func (h *Host) startRole(t testing.TB, role string, args ...string) *Process {
	t.Helper()
	path, err := h.lab.roleLink(role)
	if err != nil {
		t.Fatalf("netlab: %v", err)
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.name, path}, args...)...)
	cmd.Env = append(os.Environ(), roleEnv+"="+role)
	// A pipe of our own, not StdoutPipe: Wait (at cleanup) must not close
	// it under the reader, which ends on EOF when the process dies.
	stdout, w, err := os.Pipe()
	if err != nil {
		t.Fatalf("netlab: %v", err)
	}
	cmd.Stdout = w
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	cmd.WaitDelay = time.Second
	dieWithParent(cmd)
	err = cmd.Start()
	w.Close()
	if err != nil {
		stdout.Close()
		t.Fatalf("netlab: start %s in %s: %v", role, h.name, err)
	}
	p := &proc{cmd: cmd, out: stderr, host: h}
	h.lab.mu.Lock()
	h.lab.procs = append(h.lab.procs, p)
	h.lab.mu.Unlock()
	t.Cleanup(p.stop)

	line := make(chan string, 1)
	go func() {
		defer stdout.Close()
		r := bufio.NewReader(stdout)
		s, _ := r.ReadString('\n')
		line <- strings.TrimSpace(s)
		_, _ = io.Copy(io.Discard, r) // the role writes nothing more; never block it
	}()
	var status string
	select {
	case status = <-line:
	case <-time.After(10 * time.Second):
		status = "error: not ready after 10s"
	}
	if status != "ready" {
		p.stop()
		t.Fatalf("netlab: %s %s in %s: %s\n%s", role, strings.Join(args, " "), h.name, status, stderr.String())
	}
	return &Process{Host: h, Name: role, Args: args, Pid: cmd.Process.Pid}
}

// roleLink returns the path of the link named role to the test binary,
// making the lab's link directory on first use.
func (l *Lab) roleLink(role string) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return "", err
		}
		dir, err := os.MkdirTemp("", "netlab-"+l.id+"-")
		if err != nil {
			return "", err
		}
		for _, r := range []string{roleServer, roleProxy} {
			if err := os.Symlink(exe, filepath.Join(dir, r)); err != nil {
				os.RemoveAll(dir)
				return "", err
			}
		}
		l.bin = dir
	}
	return filepath.Join(l.bin, role), nil
}

// Serve runs a server process ("netlab-server") inside h, listening on
// each of addrs, until t's test ends. On each connection it writes a
// banner line, "NAME LOCAL from REMOTE" (e.g. "web 198.19.0.2:80 from
// 198.18.0.1:40312"), and then echoes what it reads: Banner reads the line
// back.
func (h *Host) Serve(t testing.TB, name string, addrs ...netip.AddrPort) *Process {
	t.Helper()
	args := []string{"-name", name}
	for _, a := range addrs {
		args = append(args, "-listen", a.String())
	}
	return h.startRole(t, roleServer, args...)
}

// Banner connects from h to addr and returns the first line the server
// writes, without the newline: from a Serve server, which server the
// kernel delivered the connection to, on which address, and from where. A
// connection that fails, or is closed or reset before a line, returns the
// error (io.EOF for a close: a proxy whose backend is down).
func (h *Host) Banner(ctx context.Context, addr netip.AddrPort) (string, error) {
	c, err := h.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		return "", err
	}
	defer c.Close()
	if d, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(d)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("netlab: connected to %v from %s, then read: %w", addr, h.name, err)
	}
	return strings.TrimSuffix(line, "\n"), nil
}
