package test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

const base = ".."

// decodeStrict decodes one manifest into its Kubernetes API type; an
// unknown field, a wrong type or an unknown kind is an error.
func decodeStrict(o Object) (any, error) {
	var v any
	switch o.Kind() {
	case "Namespace":
		v = &corev1.Namespace{}
	case "ConfigMap":
		v = &corev1.ConfigMap{}
	case "Service":
		v = &corev1.Service{}
	case "PersistentVolumeClaim":
		v = &corev1.PersistentVolumeClaim{}
	case "Deployment":
		v = &appsv1.Deployment{}
	case "DaemonSet":
		v = &appsv1.DaemonSet{}
	default:
		return nil, &unknownKind{o.Kind()}
	}
	b, err := json.Marshal(o.Doc)
	if err != nil {
		return nil, err
	}
	return v, yaml.UnmarshalStrict(b, v)
}

type unknownKind struct{ kind string }

func (e *unknownKind) Error() string {
	return "kind " + e.kind + ": not one this test decodes; add its API type"
}

// Every manifest of the base decodes strictly, and a field the API does
// not have is caught.
func TestManifestsDecodeStrictly(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(base, "*.yaml"))
	if err != nil || len(files) < 3 {
		t.Fatalf("manifests: %v %v", files, err)
	}
	n := 0
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		objs, err := ReadManifests(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			if _, err := decodeStrict(o); err != nil {
				t.Errorf("%s (%s %s): %v", o.From, o.Kind(), o.Name(), err)
			}
			n++
		}
	}
	t.Logf("%d manifests decoded strictly", n)

	// The check has teeth: a misspelt field is refused.
	bad := Object{Doc: map[string]any{"apiVersion": "apps/v1", "kind": "DaemonSet",
		"metadata": map[string]any{"name": "x"},
		"spec": map[string]any{"template": map[string]any{"spec": map[string]any{
			"containers": []any{map[string]any{"name": "a", "image": "b", "subpath": "c"}}}}}}}
	if _, err := decodeStrict(bad); err == nil || !strings.Contains(err.Error(), "subpath") {
		t.Errorf("a container with an unknown field decoded: %v", err)
	}
}

// built builds dir and decodes every object, by kind/name.
func built(t *testing.T, dir string) map[string]any {
	t.Helper()
	objs, err := Build(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]any{}
	for _, o := range objs {
		v, err := decodeStrict(o)
		if err != nil {
			t.Fatalf("%s: %v", o.From, err)
		}
		out[o.Kind()+"/"+o.Name()] = v
	}
	return out
}

// The base builds; an overlay's images: sets the image of hub and agents.
func TestBuildSetsImage(t *testing.T) {
	for _, tc := range []struct{ dir, want string }{
		{base, "reach:set-the-image-in-an-overlay"},
		{filepath.Join("testdata", "overlay"), "registry.example.com/team/reach:v1.2.3"},
	} {
		objs := built(t, tc.dir)
		for _, key := range []string{"Deployment/reach-hub", "DaemonSet/reach-agent"} {
			spec := podSpec(t, objs, key)
			if got := spec.Containers[0].Image; got != tc.want {
				t.Errorf("%s: %s runs image %q, want %q", tc.dir, key, got, tc.want)
			}
		}
		for key, o := range objs {
			if meta := objectMeta(o); meta.Labels["app.kubernetes.io/part-of"] != "reach" {
				t.Errorf("%s: %s lacks the label app.kubernetes.io/part-of: reach", tc.dir, key)
			}
		}
	}
}

func podSpec(t *testing.T, objs map[string]any, key string) corev1.PodSpec {
	t.Helper()
	switch o := objs[key].(type) {
	case *appsv1.Deployment:
		return o.Spec.Template.Spec
	case *appsv1.DaemonSet:
		return o.Spec.Template.Spec
	}
	t.Fatalf("the build has no %s", key)
	return corev1.PodSpec{}
}

func objectMeta(o any) (m struct {
	Labels map[string]string
}) {
	b, _ := json.Marshal(o)
	var v struct {
		Metadata struct {
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
	}
	_ = json.Unmarshal(b, &v)
	m.Labels = v.Metadata.Labels
	return m
}

// The hub: its ConfigMap mounted as a directory (no subPath: updates reach
// the pod, and reach watch reloads them), probes on /healthz, and every
// field Pod Security "restricted" asks for, in a namespace that enforces it.
func TestHubIsRestricted(t *testing.T) {
	objs := built(t, base)
	spec := podSpec(t, objs, "Deployment/reach-hub")
	c := spec.Containers[0]
	var configVol string
	for _, v := range spec.Volumes {
		if v.ConfigMap != nil && v.ConfigMap.Name == "reach-hub" {
			configVol = v.Name
		}
	}
	mounted := false
	for _, m := range c.VolumeMounts {
		if m.SubPath != "" || m.SubPathExpr != "" {
			t.Errorf("the hub mounts %s with subPath %q: updates would never reach the pod", m.Name, m.SubPath)
		}
		if m.Name == configVol {
			mounted = true
			if !slices.Contains(c.Args, "--config="+m.MountPath+"/reach.yaml") {
				t.Errorf("the hub reads %v, not the ConfigMap mounted at %s", c.Args, m.MountPath)
			}
		}
	}
	if !mounted {
		t.Error("the hub does not mount its ConfigMap")
	}
	for name, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" {
			t.Errorf("the hub's %s probe is %+v, want GET /healthz", name, p)
		}
	}
	checkRestricted(t, "hub", spec)
	ns, ok := objs["Namespace/reach"].(*corev1.Namespace)
	if !ok || ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Errorf("the hub's namespace does not enforce restricted: %+v", ns)
	}
	if d := objs["Deployment/reach-hub"].(*appsv1.Deployment); d.Namespace != "reach" {
		t.Errorf("the hub runs in namespace %q", d.Namespace)
	}
}

// checkRestricted applies Pod Security's "restricted" profile (v1.25 and
// later) to a pod spec.
func checkRestricted(t *testing.T, who string, spec corev1.PodSpec) {
	t.Helper()
	if spec.HostNetwork || spec.HostPID || spec.HostIPC {
		t.Errorf("%s: host namespaces", who)
	}
	for _, v := range spec.Volumes {
		if v.ConfigMap == nil && v.Secret == nil && v.PersistentVolumeClaim == nil && v.EmptyDir == nil &&
			v.DownwardAPI == nil && v.Projected == nil && v.CSI == nil && v.Ephemeral == nil {
			t.Errorf("%s: volume %s is of a type restricted forbids", who, v.Name)
		}
	}
	psc := spec.SecurityContext
	podNonRoot := psc != nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot
	podSeccomp := psc != nil && psc.SeccompProfile != nil && psc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault
	for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		sc := c.SecurityContext
		if sc == nil {
			t.Errorf("%s/%s: no securityContext", who, c.Name)
			continue
		}
		if !podNonRoot && (sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot) {
			t.Errorf("%s/%s: runAsNonRoot is not set", who, c.Name)
		}
		if sc.RunAsUser != nil && *sc.RunAsUser == 0 || psc != nil && psc.RunAsUser != nil && *psc.RunAsUser == 0 {
			t.Errorf("%s/%s: runs as uid 0", who, c.Name)
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("%s/%s: allowPrivilegeEscalation is not false", who, c.Name)
		}
		if sc.Privileged != nil && *sc.Privileged {
			t.Errorf("%s/%s: privileged", who, c.Name)
		}
		if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			t.Errorf("%s/%s: capabilities do not drop ALL", who, c.Name)
		} else if len(sc.Capabilities.Add) > 0 && !slices.Equal(sc.Capabilities.Add, []corev1.Capability{"NET_BIND_SERVICE"}) {
			t.Errorf("%s/%s: adds %v", who, c.Name, sc.Capabilities.Add)
		}
		if !podSeccomp && (sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault) {
			t.Errorf("%s/%s: no seccompProfile RuntimeDefault", who, c.Name)
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("%s/%s: the root file system is writable", who, c.Name)
		}
		for _, p := range c.Ports {
			if p.HostPort != 0 {
				t.Errorf("%s/%s: hostPort %d", who, c.Name, p.HostPort)
			}
		}
	}
}

// The agent: self-registration from the Downward API (node name, node IP,
// the pod's labels as a file), seccomp, and only the capabilities its
// evidence query uses.
func TestAgentRegistersWithDownwardAPI(t *testing.T) {
	objs := built(t, base)
	spec := podSpec(t, objs, "DaemonSet/reach-agent")
	c := spec.Containers[0]
	env := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			env[e.Name] = e.ValueFrom.FieldRef.FieldPath
		}
	}
	if env["NODE_NAME"] != "spec.nodeName" || env["NODE_IP"] != "status.hostIP" {
		t.Errorf("the agent's Downward API env: %v", env)
	}
	for _, want := range []string{"--name=$(NODE_NAME)", "--addr=$(NODE_IP)", "--listen=$(NODE_IP):7070"} {
		if !slices.Contains(c.Args, want) {
			t.Errorf("the agent's args %v lack %s", c.Args, want)
		}
	}
	labelsFile := ""
	for _, a := range c.Args {
		if f, ok := strings.CutPrefix(a, "--labels-file="); ok {
			labelsFile = f
		}
	}
	found := false
	for _, v := range spec.Volumes {
		if v.DownwardAPI == nil {
			continue
		}
		for _, it := range v.DownwardAPI.Items {
			for _, m := range c.VolumeMounts {
				if m.Name == v.Name && it.FieldRef != nil && it.FieldRef.FieldPath == "metadata.labels" &&
					filepath.Join(m.MountPath, it.Path) == labelsFile && m.SubPath == "" {
					found = true
				}
			}
		}
	}
	if !found {
		t.Errorf("--labels-file %q is not the pod's labels from the Downward API", labelsFile)
	}
	sc := c.SecurityContext
	if psc := spec.SecurityContext; (psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault) &&
		(sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault) {
		t.Error("the agent has no seccompProfile RuntimeDefault")
	}
	caps := slices.Clone(sc.Capabilities.Add)
	slices.Sort(caps)
	if want := []corev1.Capability{"DAC_READ_SEARCH", "NET_ADMIN", "SYS_PTRACE"}; !slices.Equal(caps, want) ||
		!slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("the agent's capabilities: drop %v add %v, want drop [ALL] add %v", sc.Capabilities.Drop, caps, want)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("the agent may escalate privileges or write its root file system")
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Error("the agent is privileged")
	}
	for key := range objs {
		kind, _, _ := strings.Cut(key, "/")
		if slices.Contains([]string{"ServiceAccount", "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"}, kind) {
			t.Errorf("%s: reach needs no Kubernetes API access", key)
		}
	}
}

// What the build does not implement is refused, not ignored.
func TestBuildRefusesWhatItDoesNotImplement(t *testing.T) {
	dir := t.TempDir()
	k := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: []\npatches: []\n"
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Build(dir); err == nil || !strings.Contains(err.Error(), "patches") {
		t.Errorf("a kustomization with patches built: %v", err)
	}
}

func TestSetImage(t *testing.T) {
	for _, tc := range []struct {
		img  string
		im   Image
		want string
	}{
		{"reach", Image{NewName: "r.example/reach", NewTag: "v1"}, "r.example/reach:v1"},
		{"reach:old", Image{NewName: "r.example/reach"}, "r.example/reach:old"},
		{"reach:old", Image{NewTag: "v2"}, "reach:v2"},
		{"r.example:5000/reach:old", Image{Digest: "sha256:ab"}, "r.example:5000/reach@sha256:ab"},
		{"reach@sha256:cd", Image{NewName: "x/reach"}, "x/reach@sha256:cd"},
	} {
		if got := setImage(tc.img, tc.im); got != tc.want {
			t.Errorf("setImage(%q, %+v) = %q, want %q", tc.img, tc.im, got, tc.want)
		}
		if n := imageName(tc.img); strings.ContainsAny(n, "@") || strings.HasSuffix(n, ":old") {
			t.Errorf("imageName(%q) = %q", tc.img, n)
		}
	}
}
