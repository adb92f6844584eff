package version

import (
	"maps"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestFrom(t *testing.T) {
	vcs := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i+1 < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	const rev = "0123456789abcdef0123456789abcdef01234567"
	for _, c := range []struct {
		name                  string
		version, commit, date string
		bi                    *debug.BuildInfo
		want                  Info
		wantString, wantAgent string
	}{{
		name: "nothing known",
		want: Info{Version: Dev, Commit: Unknown, Date: Unknown},
	}, {
		name:    "stamped",
		version: "v1.2.3", commit: rev, date: "2026-12-05T19:00:00+01:00",
		bi:         &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}},
		want:       Info{Version: "v1.2.3", Commit: rev, Date: "2026-12-05T18:00:00Z", GoVersion: "go1.26.0"},
		wantString: "reach v1.2.3 (commit 0123456789ab, 2026-12-05T18:00:00Z) go1.26.0",
		wantAgent:  "reach/v1.2.3",
	}, {
		name: "go install at a version",
		bi: &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.4.0"},
			Settings: vcs("vcs.revision", rev)},
		want:      Info{Version: "v1.4.0", Commit: rev, Date: Unknown, GoVersion: "go1.26.0"},
		wantAgent: "reach/v1.4.0",
	}, {
		name: "build in a dirty checkout",
		bi: &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"},
			Settings: vcs("vcs.revision", rev, "vcs.time", "2026-12-05T18:00:00Z", "vcs.modified", "true")},
		want:       Info{Version: Dev, Commit: rev, Date: "2026-12-05T18:00:00Z", Modified: true, GoVersion: "go1.26.0"},
		wantString: "reach dev (commit 0123456789ab+dirty, 2026-12-05T18:00:00Z)",
	}, {
		name:    "stamped fields win over the build information, each on its own",
		version: "v2.0.0-rc.1-3-gabcdef-dirty",
		bi: &debug.BuildInfo{Main: debug.Module{Version: "v1.0.0"},
			Settings: vcs("vcs.revision", rev, "vcs.time", "not a time")},
		want: Info{Version: "v2.0.0-rc.1-3-gabcdef-dirty", Commit: rev, Date: "not a time", Modified: true},
	}} {
		t.Run(c.name, func(t *testing.T) {
			got := from(c.version, c.commit, c.date, c.bi)
			if c.want.GoVersion == "" {
				c.want.GoVersion = got.GoVersion // the running toolchain's
			}
			c.want.Platform = got.Platform
			if got != c.want {
				t.Errorf("got  %+v\nwant %+v", got, c.want)
			}
			if !strings.HasPrefix(got.String(), c.wantString) {
				t.Errorf("String() = %q, want it to start with %q", got.String(), c.wantString)
			}
			if c.wantAgent != "" && got.UserAgent() != c.wantAgent {
				t.Errorf("UserAgent() = %q, want %q", got.UserAgent(), c.wantAgent)
			}
		})
	}
}

func TestCollector(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	in := Get()
	want := map[string]string{"version": in.Version, "commit": in.Commit, "date": in.Date, "goversion": in.GoVersion}
	if len(mfs) != 1 || mfs[0].GetName() != "reach_build_info" || len(mfs[0].Metric) != 1 {
		t.Fatalf("gathered %v, want one reach_build_info series", mfs)
	}
	m := mfs[0].Metric[0]
	if m.GetGauge().GetValue() != 1 {
		t.Errorf("reach_build_info = %v, want 1", m.GetGauge().GetValue())
	}
	got := map[string]string{}
	for _, l := range m.Label {
		got[l.GetName()] = l.GetValue()
	}
	if !maps.Equal(got, want) {
		t.Errorf("labels %v, want %v", got, want)
	}
}
