package monitor

import (
	"strings"
	"testing"
)

// Issue 11, row 8: a second YAML document was ignored without a word, and
// the endpoints in it never watched.
func TestHostileTwoDocumentConfig(t *testing.T) {
	const ep = "endpoints:\n  - {name: a, target: '127.0.0.1:1'}\n"
	for _, tc := range []struct{ name, src, want string }{
		{"second document", ep + "---\n" + ep, "reach.yaml:3: a second YAML document starts here (---)"},
		{"after empty ones", ep + "---\n---\n# x\n---\n" + ep, "reach.yaml:6: a second YAML document"},
		{"second not YAML", ep + "---\n- [\n", "reach.yaml:4: not valid YAML"},
		{"trailing ---", ep + "---\n", ""},
		{"leading ---", "---\n" + ep, ""},
		{"end marker", ep + "...\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ParseConfig("reach.yaml", []byte(tc.src))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want == "" && len(cfg.Endpoints) != 1:
				t.Fatalf("got %d endpoints, want 1", len(cfg.Endpoints))
			case tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)):
				t.Fatalf("got %v\nwant %s...", err, tc.want)
			}
		})
	}
}

// Issue 11, row 13: webhook ports 0 and 99999 were accepted (and failed
// only when an alert was sent); the errors quote the URL as the logs do,
// without its secrets.
func TestHostileWebhookURL(t *testing.T) {
	const ep = "endpoints:\n  - {name: a, target: '127.0.0.1:1'}\n"
	for _, tc := range []struct{ url, want string }{
		{"http://127.0.0.1:0/hook", `reach.yaml:1: alerts.webhook: http://127.0.0.1:0/...: port 0 is out of range 1-65535`},
		{"https://u:pw@127.0.0.1:99999/T/B/SECRET?key=K", `reach.yaml:1: alerts.webhook: https://127.0.0.1:99999/...: port 99999 is out of range 1-65535`},
		{"http://127.0.0.1:65536/", `port 65536 is out of range`},
		{"http://:80/hook", `alerts.webhook: "http://:80/...": want an http:// or https:// URL with a host`},
		{"http://u:pw@127.0.0.1:-1/SECRET", `alerts.webhook: not a URL: invalid port ":-1" after host`},
		{"http://127.0.0.1:65535/hook", ""},
		{"https://127.0.0.1/hook", ""},
	} {
		_, err := ParseConfig("reach.yaml", []byte("alerts: {webhook: '"+tc.url+"'}\n"+ep))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s refused: %v", tc.url, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: got %v\nwant %s", tc.url, err, tc.want)
		case err != nil && (strings.Contains(err.Error(), "pw") || strings.Contains(err.Error(), "SECRET")):
			t.Errorf("%s: the error shows a secret: %v", tc.url, err)
		}
	}
}
