package cli

import (
	"path/filepath"
	"strings"
	"testing"
)

// Issue 11, row 13: --check-config printed the webhook URL whole, with the
// password, the secret path of a chat webhook and its key; it now shows it
// as the logs do (scheme and host).
func TestHostileCheckConfigHidesSecrets(t *testing.T) {
	config := filepath.Join(t.TempDir(), "reach.yaml")
	writeConfig(t, config, "alerts:\n  webhook: https://user:pAsSw0rd@127.0.0.1:8443/services/T0/B0/s3cretPath?key=k3yValue&token=t0kenValue\n"+
		"endpoints:\n  - {name: a, target: 127.0.0.1:1}\n")
	code, out, errs := run(t, "watch", "-c", config, "--check-config")
	if code != ExitOK || !strings.Contains(out, "webhook https://127.0.0.1:8443/...") {
		t.Fatalf("exit %d, stdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	for _, secret := range []string{"user", "pAsSw0rd", "s3cretPath", "k3yValue", "t0kenValue"} {
		if strings.Contains(out+errs, secret) {
			t.Errorf("--check-config shows %q:\n%s%s", secret, out, errs)
		}
	}
}
