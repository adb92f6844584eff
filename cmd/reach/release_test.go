package main

import (
	"context"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// need fails in CI, and skips elsewhere, when a tool the test runs is missing.
func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is not installed (scripts/test installs it)", tool)
			}
			t.Skipf("%s is not installed", tool)
		}
	}
}

// sh runs a command and returns its combined output, failing the test on error.
func sh(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir, cmd.Env = dir, append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// scripts/release, for this machine's architecture only (the other four
// targets take minutes and test nothing more): checksums that verify, a
// static binary stamped with the version given, a .deb with its control
// fields, files, man pages that man reads and bash completion that offers
// flag values, and the image's build context. As root the package is
// installed with dpkg -i, checked, and purged.
func TestRelease(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a release")
	}
	need(t, "dpkg-deb", "gzip", "man", "bash", "sha256sum")
	const goVersion, debVersion = "v1.2.3-rc.1", "1.2.3~rc.1" // a pre-release sorts before 1.2.3
	arch := runtime.GOARCH
	dist := t.TempDir()
	start := time.Now()
	sh(t, "../..", []string{"REACH_TARGETS=linux/" + arch, "REACH_DIST=" + dist, "REACH_VERSION=" + goVersion},
		"bash", "scripts/release")
	t.Logf("scripts/release for linux/%s: %v", arch, time.Since(start).Round(time.Second))
	commit := strings.TrimSpace(sh(t, "../..", nil, "git", "rev-parse", "HEAD"))

	sh(t, dist, nil, "sha256sum", "--check", "--strict", "SHA256SUMS")

	bin := filepath.Join(dist, "reach-linux-"+arch)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the release binary is dynamically linked (it has an ELF interpreter)")
		}
	}
	f.Close()
	wantVersion := "reach " + goVersion + " (commit " + commit[:12]
	if out := sh(t, "", nil, bin, "--version"); !strings.HasPrefix(out, wantVersion) {
		t.Errorf("reach --version = %q, want it to start with %q", out, wantVersion)
	}

	deb := filepath.Join(dist, "reach_"+debVersion+"_"+arch+".deb")
	for field, want := range map[string]string{"Package": "reach", "Version": debVersion,
		"Architecture": arch, "Depends": "", "Maintainer": "The reach authors <"} {
		if got := strings.TrimSpace(sh(t, "", nil, "dpkg-deb", "--field", deb, field)); !strings.HasPrefix(got, want) || want == "" && got != "" {
			t.Errorf("control field %s: %q, want %q", field, got, want)
		}
	}
	if got := sh(t, "", nil, "dpkg-deb", "--info", deb, "conffiles"); got != "/etc/reach/reach.yaml\n" {
		t.Errorf("conffiles %q, want /etc/reach/reach.yaml", got)
	}
	root := t.TempDir()
	sh(t, "", nil, "dpkg-deb", "--extract", deb, root)
	for _, p := range []string{"usr/bin/reach", "usr/share/man/man1/reach.1.gz", "usr/share/man/man1/reach-check.1.gz",
		"usr/share/bash-completion/completions/reach", "usr/share/zsh/vendor-completions/_reach",
		"usr/share/fish/vendor_completions.d/reach.fish", "lib/systemd/system/reach-agent.service",
		"lib/systemd/system/reach-watch.service", "etc/reach/reach.yaml",
		"usr/share/doc/reach/examples/reach.yaml", "usr/share/doc/reach/copyright"} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("the package lacks /%s", p)
		}
	}
	page := sh(t, "", []string{"MANPAGER=cat", "MANWIDTH=100", "LC_ALL=C.UTF-8"}, "man", "-l",
		filepath.Join(root, "usr/share/man/man1/reach-check.1.gz"))
	if !strings.Contains(page, "reach-check") || !strings.Contains(page, "SYNOPSIS") || !strings.Contains(page, "--timeout") {
		t.Errorf("man -l reach-check.1.gz does not show the page:\n%s", page)
	}
	bashOffers(t, filepath.Join(root, "usr/share/bash-completion/completions/reach"), filepath.Join(root, "usr/bin"))

	if b, err := os.ReadFile(filepath.Join(dist, "image", "Dockerfile")); err != nil ||
		!strings.Contains(string(b), "COPY reach-linux-${TARGETARCH} /usr/bin/reach") || !strings.Contains(string(b), "\nUSER ") {
		t.Errorf("image/Dockerfile copies no reach-linux-${TARGETARCH} or sets no USER: %v\n%s", err, b)
	}
	if _, err := os.Stat(filepath.Join(dist, "image", "reach-linux-"+arch)); err != nil {
		t.Errorf("the image's build context lacks its binary: %v", err)
	}

	t.Run("dpkg -i", func(t *testing.T) { installDeb(t, deb, goVersion) })
}

// bashOffers loads the completion script in bash, as bash-completion does
// for a user, and completes `reach connect --policy r<TAB>`.
func bashOffers(t *testing.T, script, binDir string) {
	t.Helper()
	const lib = "/usr/share/bash-completion/bash_completion"
	if _, err := os.Stat(lib); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing (Debian's bash-completion; scripts/test installs it)", lib)
		}
		t.Skipf("%s is missing", lib)
	}
	out := sh(t, "", []string{"PATH=" + binDir + ":" + os.Getenv("PATH"), "SCRIPT=" + script, "LIB=" + lib},
		"bash", "-c", `source "$LIB"; source "$SCRIPT"
complete -p reach
COMP_WORDS=(reach connect --policy r); COMP_CWORD=3
COMP_LINE="reach connect --policy r"; COMP_POINT=${#COMP_LINE}
__start_reach reach r --policy
printf 'offer:%s\n' "${COMPREPLY[@]}"`)
	if !strings.Contains(out, "-F __start_reach reach") {
		t.Errorf("the script registers no completion for reach:\n%s", out)
	}
	var offers []string
	for line := range strings.Lines(out) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "offer:"); ok {
			offers = append(offers, strings.Fields(v)[0])
		}
	}
	if strings.Join(offers, " ") != "round-robin random race" {
		t.Errorf("reach connect --policy r<TAB> offers %q, want round-robin random race:\n%s", offers, out)
	}
}

// installDeb installs the package for real, as root (CI is), checks what it
// put in place, and purges it.
func installDeb(t *testing.T, deb, goVersion string) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("CI runs as root; installing the package needs it")
		}
		t.Skip("installing the package needs root")
	}
	need(t, "dpkg", "dpkg-query", "systemd-analyze")
	if out, err := exec.Command("dpkg-query", "-W", "-f", "${Status}", "reach").Output(); err == nil &&
		strings.Contains(string(out), "installed") {
		t.Skipf("a reach package is already installed here (%s): not replacing it", out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("dpkg", "--purge", "reach").CombinedOutput(); err != nil {
			t.Errorf("dpkg --purge reach: %v\n%s", err, out)
		}
		for _, p := range []string{"/usr/bin/reach", "/etc/reach/reach.yaml", "/lib/systemd/system/reach-agent.service"} {
			if _, err := os.Stat(p); err == nil {
				t.Errorf("%s is still there after dpkg --purge", p)
			}
		}
	})
	sh(t, "", nil, "dpkg", "-i", deb)
	if out := sh(t, "", nil, "/usr/bin/reach", "--version"); !strings.HasPrefix(out, "reach "+goVersion+" ") {
		t.Errorf("installed reach --version = %q, want reach %s", out, goVersion)
	}
	if out := sh(t, "", []string{"MANPAGER=cat", "MANWIDTH=100"}, "man", "1", "reach-watch"); !strings.Contains(out, "reach-watch") {
		t.Errorf("man reach-watch:\n%s", out)
	}
	// Installed, the units' binary and man pages (Documentation=man:...) exist.
	for _, u := range []string{"reach-agent.service", "reach-watch.service"} {
		if out, err := exec.Command("systemd-analyze", "verify", "/lib/systemd/system/"+u).CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("systemd-analyze verify %s: %v\n%s", u, err, out)
		}
	}
	if out := sh(t, "", nil, "/usr/bin/reach", "watch", "-c", "/etc/reach/reach.yaml", "--check-config"); !strings.Contains(out, "valid") {
		t.Errorf("the packaged /etc/reach/reach.yaml: %s", out)
	}
}
