package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// maxExposure is the highest systemd-analyze security exposure a unit of
// deploy/systemd may have: "OK" is 1.0 to 4.9 in systemd 252, and the units
// are at 2.0 (agent) and 1.1 (watch); a change that loosens them fails here.
const maxExposure = 2.5

var exposureRE = regexp.MustCompile(`Overall exposure level for \S+: (\d+\.\d) (\S+)`)

// The units of deploy/systemd are valid (systemd-analyze verify) and
// hardened (systemd-analyze security --offline), as Debian's systemd judges.
func TestSystemdUnitsHardened(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("systemd-analyze is not installed (Debian's systemd package; scripts/test installs it)")
		}
		t.Skip("systemd-analyze is not installed")
	}
	units, err := filepath.Glob("../../deploy/systemd/*.service")
	if err != nil || len(units) < 2 {
		t.Fatalf("deploy/systemd has %d units (%v), want reach-agent and reach-watch", len(units), err)
	}
	for _, unit := range units {
		t.Run(filepath.Base(unit), func(t *testing.T) {
			b, err := os.ReadFile(unit)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), "ExecStart=/usr/bin/reach ") {
				t.Fatal("ExecStart does not run /usr/bin/reach, where the .deb installs it")
			}
			// verify checks that ExecStart's binary exists: point it at ours.
			f := filepath.Join(t.TempDir(), filepath.Base(unit))
			text := strings.ReplaceAll(string(b), "ExecStart=/usr/bin/reach ", "ExecStart="+reachBin+" ")
			if err := os.WriteFile(f, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			// --man=no: the pages are checked where the .deb installs them.
			if out, err := exec.Command("systemd-analyze", "verify", "--man=no", f).CombinedOutput(); err != nil || len(out) > 0 {
				t.Errorf("systemd-analyze verify: %v\n%s", err, out)
			}
			out, err := exec.Command("systemd-analyze", "security", "--offline=true", "--no-pager", f).CombinedOutput()
			m := exposureRE.FindStringSubmatch(string(out))
			if m == nil {
				t.Fatalf("systemd-analyze security: %v, no overall exposure in\n%s", err, out)
			}
			if x, _ := strconv.ParseFloat(m[1], 64); x > maxExposure || m[2] != "OK" && m[2] != "SAFE" && m[2] != "PERFECT" {
				t.Errorf("exposure %s %s, want at most %.1f (OK or better):\n%s", m[1], m[2], maxExposure, out)
			}
		})
	}
}
