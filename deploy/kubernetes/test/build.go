package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"
)

// Kustomization is the part of kustomize's Kustomization this build
// implements. Decoded strictly: a field it does not implement is an
// error, never ignored.
type Kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Resources  []string `json:"resources"`
	Images     []Image  `json:"images"`
	Labels     []Labels `json:"labels"`
}

// Image is kustomize's image override: containers whose image has Name
// (without tag or digest) get NewName, NewTag or Digest.
type Image struct {
	Name    string `json:"name"`
	NewName string `json:"newName"`
	NewTag  string `json:"newTag"`
	Digest  string `json:"digest"`
}

// Labels adds Pairs to every object's metadata.labels. This build does
// not implement includeSelectors or includeTemplates (kustomize's
// defaults, false, are what it does).
type Labels struct {
	Pairs map[string]string `json:"pairs"`
}

// Object is one manifest: its document as data, and where it came from.
type Object struct {
	From string
	Doc  map[string]any
}

func (o Object) Kind() string { s, _ := o.Doc["kind"].(string); return s }
func (o Object) Name() string {
	m, _ := o.Doc["metadata"].(map[string]any)
	s, _ := m["name"].(string)
	return s
}

// Build is kustomize build dir for resources, images and labels: the
// resources in order (files, or directories with a kustomization.yaml,
// built first), then the images and labels of dir's kustomization.
func Build(dir string) ([]Object, error) {
	b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		return nil, err
	}
	var k Kustomization
	if err := yaml.UnmarshalStrict(b, &k); err != nil {
		return nil, fmt.Errorf("%s: %w (this build implements resources, images and labels)",
			filepath.Join(dir, "kustomization.yaml"), err)
	}
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		return nil, fmt.Errorf("%s: apiVersion %q kind %q, want kustomize.config.k8s.io/v1beta1 Kustomization",
			dir, k.APIVersion, k.Kind)
	}
	var out []Object
	for _, r := range k.Resources {
		path := filepath.Join(dir, r)
		fi, err := os.Stat(path)
		if err != nil {
			return nil, err
		}
		var objs []Object
		if fi.IsDir() {
			objs, err = Build(path)
		} else {
			objs, err = ReadManifests(path)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, objs...)
	}
	for _, o := range out {
		for _, l := range k.Labels {
			meta := child(o.Doc, "metadata")
			labels := child(meta, "labels")
			for key, v := range l.Pairs {
				labels[key] = v
			}
		}
		for _, c := range containers(o.Doc) {
			img, _ := c["image"].(string)
			for _, im := range k.Images {
				if n := imageName(img); n == im.Name {
					c["image"] = setImage(img, im)
				}
			}
		}
	}
	seen := map[string]string{}
	for _, o := range out {
		id := o.Kind() + "/" + namespace(o) + "/" + o.Name()
		if prev, dup := seen[id]; dup {
			return nil, fmt.Errorf("%s is in %s and %s", id, prev, o.From)
		}
		seen[id] = o.From
	}
	return out, nil
}

func namespace(o Object) string {
	m, _ := o.Doc["metadata"].(map[string]any)
	s, _ := m["namespace"].(string)
	return s
}

// child returns m[key] as a map, making it when absent.
func child(m map[string]any, key string) map[string]any {
	c, ok := m[key].(map[string]any)
	if !ok {
		c = map[string]any{}
		m[key] = c
	}
	return c
}

// containers lists the containers and init containers of a workload's pod
// template (or of a Pod).
func containers(doc map[string]any) []map[string]any {
	spec, _ := doc["spec"].(map[string]any)
	switch doc["kind"] {
	case "Pod":
	case "CronJob":
		jt, _ := spec["jobTemplate"].(map[string]any)
		js, _ := jt["spec"].(map[string]any)
		t, _ := js["template"].(map[string]any)
		spec, _ = t["spec"].(map[string]any)
	default:
		t, _ := spec["template"].(map[string]any)
		spec, _ = t["spec"].(map[string]any)
	}
	var out []map[string]any
	for _, key := range []string{"initContainers", "containers"} {
		list, _ := spec[key].([]any)
		for _, c := range list {
			if m, ok := c.(map[string]any); ok {
				out = append(out, m)
			}
		}
	}
	return out
}

// imageName is an image reference without its tag or digest.
func imageName(img string) string {
	img, _, _ = strings.Cut(img, "@")
	if i := strings.LastIndex(img, ":"); i > strings.LastIndex(img, "/") {
		img = img[:i]
	}
	return img
}

// setImage applies an override as kustomize does: a new name keeps the
// old tag unless a new tag or digest is given.
func setImage(img string, im Image) string {
	name, digest, hasDigest := strings.Cut(img, "@")
	tag := ""
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		name, tag = name[:i], name[i+1:]
	}
	if im.NewName != "" {
		name = im.NewName
	}
	switch {
	case im.Digest != "":
		return name + "@" + im.Digest
	case im.NewTag != "":
		return name + ":" + im.NewTag
	case hasDigest:
		return name + "@" + digest
	case tag != "":
		return name + ":" + tag
	}
	return name
}

// ReadManifests reads every YAML document of a file as data.
func ReadManifests(path string) ([]Object, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []Object
	for i, doc := range splitDocs(b) {
		var m map[string]any
		if err := yaml.Unmarshal(doc, &m); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", path, i+1, err)
		}
		if m == nil {
			continue // only comments
		}
		out = append(out, Object{From: fmt.Sprintf("%s#%d", path, i+1), Doc: m})
	}
	return out, nil
}

// splitDocs splits a YAML stream into its documents at lines "---", as
// kubectl does.
func splitDocs(b []byte) [][]byte {
	var out [][]byte
	var cur []string
	for line := range strings.SplitSeq(string(b), "\n") {
		if strings.TrimRight(line, " \t\r") == "---" {
			out = append(out, []byte(strings.Join(cur, "\n")))
			cur = nil
			continue
		}
		cur = append(cur, line)
	}
	return append(out, []byte(strings.Join(cur, "\n")))
}
