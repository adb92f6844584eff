package sockets

import (
	"strings"
)

// Container is the container a process runs in, as the cgroup path in
// /proc/PID/cgroup names it.
type Container struct {
	// ID is the container's full id, 64 hex digits (docker ps and crictl
	// ps show its first 12).
	ID string `json:"id"`
	// Runtime is "docker", "containerd" (CRI, as Kubernetes runs it),
	// "cri-o", "podman", or "kubernetes" when the path is a Kubernetes pod's
	// but does not name the runtime (the cgroupfs driver).
	Runtime string `json:"runtime"`
	// Pod is the uid of the Kubernetes pod, when the path names one.
	Pod string `json:"pod,omitempty"`
}

// Short names the container as people see it: "docker 3f2a1b4c5d6e".
func (c Container) Short() string {
	return c.Runtime + " " + c.ID[:min(len(c.ID), 12)]
}

// parseCgroup finds the container in the text of /proc/PID/cgroup, one
// "hierarchy:controllers:path" line per cgroup hierarchy (v1), or the single
// "0::path" line of the unified hierarchy (v2). Within a path the innermost
// container wins (Kubernetes in Docker, as kind runs it, names the pod's
// container, not the node's); the first line that names one is used.
//
// Paths it knows, by runtime and cgroup driver:
//
//	docker      /docker/ID                                (cgroupfs)
//	            /system.slice/docker-ID.scope             (systemd)
//	containerd  /kubepods.slice/.../cri-containerd-ID.scope
//	            /system.slice/containerd.service/kubepods-...-podUID.slice:cri-containerd:ID
//	cri-o       /kubepods.slice/.../crio-ID.scope
//	podman      /machine.slice/libpod-ID.scope, /user.slice/.../libpod-ID.scope,
//	            /libpod_parent/libpod-ID                  (cgroupfs)
//	kubernetes  /kubepods/QOS/podUID/ID                   (cgroupfs, runtime not named)
//
// Supervisors beside a container (libpod-conmon-ID, crio-conmon-ID) are not
// in it.
func parseCgroup(text string) (Container, bool) {
	for line := range strings.Lines(text) {
		line = strings.TrimRight(line, "\n")
		_, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		_, path, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		if c, ok := containerOfPath(strings.TrimSuffix(path, " (deleted)")); ok {
			return c, true
		}
	}
	return Container{}, false
}

// containerOfPath finds the innermost container in one cgroup path.
func containerOfPath(path string) (Container, bool) {
	var found Container
	var pod string
	kube := false
	prev := ""
	for seg := range strings.SplitSeq(path, "/") {
		if p, ok := podOfSegment(seg); ok {
			pod = p
		}
		if strings.Contains(seg, "kubepods") || pod != "" {
			kube = true
		}
		if c, ok := containerOfSegment(seg, prev, kube); ok {
			if kube {
				c.Pod = pod
			}
			found = c
			pod, kube = "", false // a nested cluster starts again below
		}
		prev = seg
	}
	return found, found.ID != ""
}

// containerOfSegment recognises one path segment that names a container;
// prev is the segment before it, and kube says whether the path is under a
// kubepods cgroup.
func containerOfSegment(seg, prev string, kube bool) (Container, bool) {
	scoped := func(prefix string) (string, bool) {
		id, ok := strings.CutPrefix(seg, prefix)
		if !ok {
			return "", false
		}
		id, _ = strings.CutSuffix(id, ".scope")
		return id, isContainerID(id)
	}
	for _, k := range []struct{ prefix, runtime string }{
		{"docker-", "docker"}, {"cri-containerd-", "containerd"}, {"crio-", "cri-o"}, {"libpod-", "podman"},
	} {
		if id, ok := scoped(k.prefix); ok {
			return Container{ID: id, Runtime: k.runtime}, true
		}
	}
	if _, id, ok := strings.Cut(seg, ":cri-containerd:"); ok && isContainerID(id) {
		return Container{ID: id, Runtime: "containerd"}, true
	}
	if isContainerID(seg) {
		switch {
		case prev == "docker":
			return Container{ID: seg, Runtime: "docker"}, true
		case kube:
			return Container{ID: seg, Runtime: "kubernetes"}, true
		}
	}
	return Container{}, false
}

// podOfSegment returns the pod uid in a segment "podUID" (cgroupfs) or
// "kubepods-QOS-podUID_WITH_UNDERSCORES.slice" (systemd; kind's nodes write
// "kubelet-kubepods-..."), possibly followed by ":runtime:ID".
func podOfSegment(seg string) (string, bool) {
	seg, _, _ = strings.Cut(seg, ":")
	seg = strings.TrimSuffix(seg, ".slice")
	if i := strings.LastIndexByte(seg, '-'); i >= 0 && strings.Contains(seg, "kubepods") {
		seg = seg[i+1:]
	}
	uid, ok := strings.CutPrefix(seg, "pod")
	if !ok {
		return "", false
	}
	uid = strings.ReplaceAll(uid, "_", "-")
	// A uid (8-4-4-4-12), or the 32-hex hash a static pod's mirror has.
	if len(uid) != 36 && len(uid) != 32 {
		return "", false
	}
	for i, c := range uid {
		dash := len(uid) == 36 && (i == 8 || i == 13 || i == 18 || i == 23)
		if dash != (c == '-') || (!dash && !isHex(c)) {
			return "", false
		}
	}
	return uid, true
}

// isContainerID reports whether s is a full container id: 64 lowercase hex
// digits, as Docker, containerd, CRI-O and Podman all make them.
func isContainerID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !isHex(c) {
			return false
		}
	}
	return true
}

func isHex(c rune) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' }
