package cli

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// Issue 11, row 13: a 1-character token file was accepted, for agents and
// hub alike, and so were short tokens in the environment: each is refused
// with its length and how to make a good one.
func TestHostileShortToken(t *testing.T) {
	dir := t.TempDir()
	short, good := filepath.Join(dir, "short"), filepath.Join(dir, "good")
	writeConfig(t, short, "x\n")
	writeConfig(t, good, "0123456789abcdef\n") // exactly MinTokenBytes
	config := func(token string) string {
		path := filepath.Join(t.TempDir(), "reach.yaml")
		writeConfig(t, path, fmt.Sprintf("agents:\n  token_file: %s\n  hosts: [{name: a, addr: 127.0.0.1}]\n", token))
		return path
	}
	const how = "head -c 32 /dev/urandom | base64"
	for _, tc := range []struct {
		name string
		env  []string // name, value
		args []string
		code int
		want string
	}{
		{"agent token file", nil, []string{"agent", "--hub", "http://127.0.0.1:1", "--token-file", short},
			ExitUsage, "the token in token file " + short + " is 1 byte; it needs at least 16"},
		{"agent REACH_TOKEN", []string{"REACH_TOKEN", "s3cret"}, []string{"agent", "--hub", "http://127.0.0.1:1"},
			ExitUsage, "the token in REACH_TOKEN is 6 bytes"},
		{"check REACH_TOKEN", []string{"REACH_TOKEN", "s3cret"}, []string{"check", "127.0.0.1:1", "--agent", "http://127.0.0.1:1"},
			ExitUsage, "the token in REACH_TOKEN is 6 bytes"},
		{"hub agents.token_file", nil, []string{"watch", "-c", config(short), "--check-config"},
			ExitFail, "agents.token_file: the token in token file " + short + " is 1 byte;"},
		{"dashboard token", []string{"REACH_WATCH_TOKEN", "s3cret"}, []string{"watch", "-c", config(good), "--check-config"},
			ExitUsage, "the token in --token or REACH_WATCH_TOKEN is 6 bytes"},
		{"16 bytes are enough", []string{"REACH_WATCH_TOKEN", "0123456789abcdef"}, []string{"watch", "-c", config(good), "--check-config"},
			ExitOK, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("REACH_TOKEN", "")
			t.Setenv("REACH_WATCH_TOKEN", "")
			if tc.env != nil {
				t.Setenv(tc.env[0], tc.env[1])
			}
			code, out, errs := run(t, tc.args...)
			if code != tc.code || !strings.Contains(errs, tc.want) || tc.code != ExitOK && !strings.Contains(errs, how) {
				t.Fatalf("exit %d, stdout %q, stderr %q\nwant exit %d, stderr with %q and %q", code, out, errs, tc.code, tc.want, how)
			}
		})
	}
}
