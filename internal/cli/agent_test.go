package cli

import (
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reach-tools/reach/hub"
	"github.com/reach-tools/reach/internal/testnet"
)

func TestAgentCommandErrors(t *testing.T) {
	h, err := hub.New(hub.Config{Token: "right", Hosts: []hub.HostConfig{{Name: "a", Addr: netip.MustParseAddr("127.0.0.1")}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h.Handler())
	defer srv.Close()
	dir := t.TempDir()
	wrong, empty := filepath.Join(dir, "wrong"), filepath.Join(dir, "empty")
	os.WriteFile(wrong, []byte("wrong-token-0123456789\n"), 0o600)
	os.WriteFile(empty, []byte("\n"), 0o600)
	t.Setenv("REACH_TOKEN", "")
	busy := testnet.Listen(t).Addr().String()
	for _, tc := range []struct {
		args    []string
		code    int
		wantErr string
	}{
		{[]string{"agent"}, ExitUsage, "--hub is required"},
		{[]string{"agent", "--hub", srv.URL}, ExitUsage, "no token"},
		{[]string{"agent", "--hub", srv.URL, "--token-file", empty}, ExitUsage, "is empty"},
		{[]string{"agent", "--hub", "hub:9100", "--token-file", wrong}, ExitUsage, "not an http:// or https:// URL"},
		{[]string{"agent", "--hub", srv.URL, "--token-file", wrong, "--name", "a", "--listen", "127.0.0.1:0"}, ExitFail, "the hub refused this agent"},
		{[]string{"agent", "--hub", srv.URL, "--token-file", wrong, "--name", "a", "--listen", "0.0.0.0:0"}, ExitFail, "no --advertise: the hub cannot tell"},
		{[]string{"agent", "--hub", srv.URL, "--token-file", wrong, "--listen", "127.0.0.1:99999"}, ExitUsage, `port "99999": want a number from 0 to 65535`},
		{[]string{"agent", "--hub", srv.URL, "--token-file", wrong, "--listen", "127.0.0.1:70000"}, ExitUsage, `port "70000": want a number from 0 to 65535`},
		{[]string{"agent", "--hub", srv.URL, "--token-file", wrong, "--listen", "127.0.0.1:"}, ExitUsage, `port "": want a number`},
		{[]string{"agent", "--hub", srv.URL, "--token-file", wrong, "--listen", "bad host!:7070"}, ExitUsage, `host "bad host!": want an IP address or a host name`},
		{[]string{"agent", "--hub", srv.URL, "--token-file", wrong, "--read-timeout", "0s"}, ExitUsage, "--read-timeout 0s: give a duration above zero"},
		{[]string{"agent", "--hub", srv.URL, "--token-file", wrong, "--max-conns-per-client", "-2"}, ExitUsage, "--max-conns-per-client -2"},
		{[]string{"agent", "--hub", srv.URL, "--token-file", wrong, "--listen", "bogus"}, ExitUsage, `--listen "bogus": address bogus: missing port in address; want host:port`},
		{[]string{"agent", "--hub", srv.URL, "--token-file", wrong, "--listen", busy}, ExitFail, `another process holds it: see "reach ports --port"`},
		{[]string{"agent", "--hub", srv.URL, "--token-file", wrong, "--buffer", "-5"}, ExitUsage, "Buffer -5 is negative"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, _, errs := run(t, tc.args...)
			if code != tc.code || !strings.Contains(errs, tc.wantErr) {
				t.Fatalf("exit %d, stderr %q; want exit %d, stderr ~%q", code, errs, tc.code, tc.wantErr)
			}
		})
	}
}
