package cli

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/reach-tools/reach/hub"
	"github.com/reach-tools/reach/monitor"
)

// yamlDocs decodes every document of a YAML file.
func yamlDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var docs []map[string]any
	for {
		var d map[string]any
		if err := dec.Decode(&d); errors.Is(err, io.EOF) {
			return docs
		} else if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		docs = append(docs, d)
	}
}

// dig walks maps and lists by key and index.
func dig(t *testing.T, v any, path ...any) any {
	t.Helper()
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("%v: not a mapping at %q", path, k)
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || len(l) <= k {
				t.Fatalf("%v: no item %d", path, k)
			}
			v = l[k]
		}
	}
	return v
}

// parsesAsAgent checks that reach agent accepts args (flags only).
func parsesAsAgent(t *testing.T, where string, args []string) {
	t.Helper()
	cmd := newAgentCmd(&Env{Stdio: Stdio{Out: io.Discard, Err: io.Discard}})
	if err := cmd.ParseFlags(args); err != nil {
		t.Errorf("%s: reach agent rejects %q: %v", where, args, err)
	}
	for _, must := range []string{"hub", "name", "listen", "token-file"} {
		if !cmd.Flags().Changed(must) {
			t.Errorf("%s: reach agent is started without --%s", where, must)
		}
	}
}

// The deploy/ manifests are valid YAML, start reach agent with flags it
// knows, and carry a hub config the hub accepts.
func TestDeployManifests(t *testing.T) {
	dir := filepath.Join("..", "..", "deploy")
	ds := yamlDocs(t, filepath.Join(dir, "kubernetes", "agent-daemonset.yaml"))
	if len(ds) != 1 || ds[0]["kind"] != "DaemonSet" {
		t.Fatalf("agent-daemonset.yaml: want one DaemonSet, got %d docs", len(ds))
	}
	ctr := dig(t, ds[0], "spec", "template", "spec", "containers", 0)
	var args []string
	for _, a := range dig(t, ctr, "args").([]any) {
		s := strings.NewReplacer("$(NODE_NAME)", "node-1", "$(NODE_IP)", "198.18.0.1").Replace(a.(string))
		args = append(args, s)
	}
	if args[0] != "agent" {
		t.Fatalf("DaemonSet runs %q, want reach agent", args[0])
	}
	parsesAsAgent(t, "DaemonSet", args[1:])

	var hubCfg string
	for _, d := range yamlDocs(t, filepath.Join(dir, "kubernetes", "hub.yaml")) {
		switch d["kind"] {
		case "ConfigMap":
			hubCfg = dig(t, d, "data", "reach.yaml").(string)
		case "Deployment":
			var args []string
			for _, a := range dig(t, d, "spec", "template", "spec", "containers", 0, "args").([]any) {
				args = append(args, a.(string))
			}
			cmd := newWatchCmd(&Env{Stdio: Stdio{Out: io.Discard, Err: io.Discard}})
			if args[0] != "watch" {
				t.Errorf("hub Deployment runs %q, want reach watch", args[0])
			} else if err := cmd.ParseFlags(args[1:]); err != nil {
				t.Errorf("hub Deployment: reach watch rejects %q: %v", args, err)
			}
		}
	}
	var cfg struct {
		Agents hub.Config `yaml:"agents"`
	}
	if err := yaml.Unmarshal([]byte(hubCfg), &cfg); err != nil {
		t.Fatalf("hub ConfigMap reach.yaml: %v", err)
	}
	cfg.Agents.TokenFile, cfg.Agents.Token = "", "x"
	if _, err := hub.New(cfg.Agents); err != nil {
		t.Errorf("hub ConfigMap: %v", err)
	}

	f, err := os.Open(filepath.Join(dir, "systemd", "reach-agent.service"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	found := false
	for sc := bufio.NewScanner(f); sc.Scan(); {
		line, ok := strings.CutPrefix(sc.Text(), "ExecStart=")
		if !ok {
			continue
		}
		found = true
		fields := strings.Fields(strings.NewReplacer("%H", "web-1", "${CREDENTIALS_DIRECTORY}", "/run/credentials").Replace(line))
		if fields[0] != "/usr/bin/reach" || fields[1] != "agent" {
			t.Fatalf("unit runs %v, want /usr/bin/reach agent (where the .deb installs it)", fields[:2])
		}
		parsesAsAgent(t, "systemd unit", fields[2:])
	}
	if !found {
		t.Error("reach-agent.service has no ExecStart")
	}
	if docs := yamlDocs(t, filepath.Join(dir, "prometheus", "scrape-agents.yaml")); len(docs) != 1 || len(dig(t, docs[0], "scrape_configs").([]any)) == 0 {
		t.Error("scrape-agents.yaml has no scrape_configs")
	}
}

// The commented agents: example in examples/reach.yaml is valid once
// uncommented.
func TestExampleAgentsSection(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "examples", "reach.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	i := strings.Index(text, "# agents:")
	if i < 0 {
		t.Fatal("examples/reach.yaml has no commented agents: section")
	}
	var lines []string
	for _, l := range strings.Split(text[i:], "\n") {
		if l, ok := strings.CutPrefix(l, "# "); ok {
			lines = append(lines, l)
		}
	}
	cfg, err := monitor.ParseConfig("reach.yaml", []byte(text[:i]+strings.Join(lines, "\n")+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Agents == nil {
		t.Fatal("examples/reach.yaml: the agents: section does not parse as one")
	}
	hc, err := hub.ParseConfig(cfg.Agents)
	if err != nil || len(hc.Hosts) != 3 {
		t.Fatalf("agents example: %+v, %v", hc, err)
	}
}
