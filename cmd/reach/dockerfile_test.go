package main

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The image's build stage (deploy/Dockerfile) cannot be run here without a
// Docker engine, so this runs its go build command as written, with the
// build arguments a release passes, and checks what the runtime stage relies
// on: a static binary (debian-slim ships no Go toolchain and the binary must
// not need libc from the build image) that starts and says its version. The
// runtime stage runs as a user that is not root.
func TestDockerfileBuildStage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary again without cgo")
	}
	df, err := os.ReadFile("../../deploy/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^RUN (CGO_ENABLED=0 go build .* -o )/reach (\./cmd/reach)$`).FindSubmatch(df)
	if m == nil {
		t.Fatalf("deploy/Dockerfile has no `RUN CGO_ENABLED=0 go build ... -o /reach ./cmd/reach` line; update this test with the Dockerfile")
	}
	for _, arg := range []string{"VERSION", "COMMIT", "DATE"} {
		if !regexp.MustCompile(`(?m)^ARG ` + arg + `\b`).Match(df) {
			t.Errorf("deploy/Dockerfile has no ARG %s: the image's build would not be stamped", arg)
		}
	}
	out := filepath.Join(t.TempDir(), "reach")
	build := string(m[1]) + out + " " + string(m[2])
	cmd := exec.Command("sh", "-c", build)
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "VERSION=v9.8.7", "COMMIT=0123456789abcdef0123456789abcdef01234567",
		"DATE=2026-12-05T18:00:00Z")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", build, err, b)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatalf("the image's binary is dynamically linked (it has an ELF interpreter); the runtime stage has no matching libc")
		}
	}
	want := "reach v9.8.7 (commit 0123456789ab, 2026-12-05T18:00:00Z)"
	if b, err := exec.Command(out, "version").CombinedOutput(); err != nil || !strings.HasPrefix(string(b), want) {
		t.Fatalf("reach version: %q, %v; want %q", b, err, want)
	}
	// scripts/release copies the runtime stage into its build context.
	_, runtime, ok := strings.Cut(string(df), " AS runtime\n")
	if !ok {
		t.Fatal("deploy/Dockerfile has no `FROM ... AS runtime` stage (scripts/release needs it)")
	}
	if u := regexp.MustCompile(`(?m)^USER (\S+)$`).FindStringSubmatch(runtime); u == nil || strings.HasPrefix(u[1], "0") || strings.HasPrefix(u[1], "root") {
		t.Errorf("the runtime stage runs as %v, want a user that is not root", u)
	}
	di, err := os.ReadFile("../../.dockerignore")
	if err != nil || !strings.Contains(string(di), ".git\n") || !strings.Contains(string(di), "dist\n") {
		t.Errorf(".dockerignore is missing or sends .git or dist/ to the build: %v", err)
	}
}
