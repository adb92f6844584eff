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
// Docker engine, so this runs its go build command as written and checks
// what the runtime stage relies on: a static binary (debian-slim ships no
// Go toolchain and the binary must not need libc from the build image) that
// starts.
func TestDockerfileBuildStage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary again without cgo")
	}
	df, err := os.ReadFile("../../deploy/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^RUN (CGO_ENABLED=0) go build (.*) -o /reach (\./cmd/reach)$`).FindSubmatch(df)
	if m == nil {
		t.Fatalf("deploy/Dockerfile has no `RUN CGO_ENABLED=0 go build ... -o /reach ./cmd/reach` line; update this test with the Dockerfile")
	}
	out := filepath.Join(t.TempDir(), "reach")
	args := append([]string{"build"}, strings.Fields(string(m[2]))...)
	args = append(args, "-o", out, "./cmd/reach")
	cmd := exec.Command("go", args...)
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), string(m[1]))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, b)
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
	if b, err := exec.Command(out, "version").CombinedOutput(); err != nil || !strings.HasPrefix(string(b), "reach ") {
		t.Fatalf("reach version: %q, %v", b, err)
	}
}
