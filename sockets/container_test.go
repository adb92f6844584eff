package sockets

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Ids in testdata/cgroup.
const (
	dockerID = "3f2a9c1e7b4d5a6f8e0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5"
	criID    = "8b1d7e2f4a6c9b3e5d7f1a2c4e6b8d0f2a4c6e8b0d2f4a6c8e0b2d4f6a8c0e2d"
	podmanID = "c0ffee00112233445566778899aabbccddeeff00112233445566778899aabbcc"
	podUID   = "0f4b2e9c-6a1d-4f43-9b8e-2d7c1a9e5f10"
)

// TestParseCgroup reads every file in testdata/cgroup: /proc/PID/cgroup as
// each runtime and cgroup driver writes it. Each file must have a row.
func TestParseCgroup(t *testing.T) {
	none := Container{}
	want := map[string]Container{
		"docker-v1-cgroupfs":          {ID: dockerID, Runtime: "docker"},
		"docker-v1-systemd":           {ID: dockerID, Runtime: "docker"},
		"docker-v2-systemd":           {ID: dockerID, Runtime: "docker"},
		"docker-systemd-in-container": {ID: dockerID, Runtime: "docker"},
		"docker-exited-deleted":       {ID: dockerID, Runtime: "docker"},
		"containerd-k8s-v2-systemd":   {ID: criID, Runtime: "containerd", Pod: podUID},
		"containerd-k8s-v1-legacy":    {ID: criID, Runtime: "containerd", Pod: podUID},
		"k8s-v1-cgroupfs":             {ID: criID, Runtime: "kubernetes", Pod: podUID},
		"k8s-guaranteed-cgroupfs":     {ID: criID, Runtime: "kubernetes", Pod: podUID},
		"crio-k8s-v2":                 {ID: criID, Runtime: "cri-o", Pod: podUID},
		"crio-conmon":                 none, // the supervisor, beside the container
		"podman-rootful":              {ID: podmanID, Runtime: "podman"},
		"podman-rootless":             {ID: podmanID, Runtime: "podman"},
		"podman-cgroupfs":             {ID: podmanID, Runtime: "podman"},
		"podman-conmon":               none,
		"kind-node-pod":               {ID: criID, Runtime: "containerd", Pod: podUID}, // innermost
		"kind-node-kubelet":           {ID: dockerID, Runtime: "docker"},               // the node itself
		"host-v2":                     none,
		"host-v1-hybrid":              none,
		"docker-daemon":               none,
		"short-id":                    none,
		"uppercase-id":                none, // runtimes write lowercase hex
		"garbage":                     none,
		"no-newline":                  none,
	}
	files, err := filepath.Glob("testdata/cgroup/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".txt")
		w, ok := want[name]
		if !ok {
			t.Errorf("%s has no expected result in the table", f)
			continue
		}
		delete(want, name)
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		got, found := parseCgroup(string(b))
		if got != w || found != (w != none) {
			t.Errorf("%s: got %+v (found %v), want %+v", name, got, found, w)
		}
	}
	for name := range want {
		t.Errorf("testdata/cgroup/%s.txt is missing", name)
	}
}

func TestContainerShort(t *testing.T) {
	if got := (Container{ID: dockerID, Runtime: "docker"}).Short(); got != "docker 3f2a9c1e7b4d" {
		t.Errorf("Short() = %q", got)
	}
}

func FuzzParseCgroup(f *testing.F) {
	files, _ := filepath.Glob("testdata/cgroup/*.txt")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	runtimes := map[string]bool{"docker": true, "containerd": true, "cri-o": true, "podman": true, "kubernetes": true}
	f.Fuzz(func(t *testing.T, text string) {
		c, ok := parseCgroup(text)
		if !ok {
			if c != (Container{}) {
				t.Fatalf("not found, yet %+v", c)
			}
			return
		}
		if !isContainerID(c.ID) || !runtimes[c.Runtime] || !strings.Contains(text, c.ID) {
			t.Fatalf("%q: found %+v", text, c)
		}
		if c.Pod != "" && !strings.Contains(text, strings.ReplaceAll(c.Pod, "-", "")[:8]) {
			t.Fatalf("%q: pod %q is not in the text", text, c.Pod)
		}
	})
}
