// Package version says which build of reach is running: its version, the
// commit it was built from and when that commit was made. A release build
// stamps them with the linker (scripts/release, scripts/demo, the image):
//
//	go build -ldflags "-X github.com/reach-tools/reach/internal/version.version=v1.2.3
//	  -X github.com/reach-tools/reach/internal/version.commit=0123abcd...
//	  -X github.com/reach-tools/reach/internal/version.date=2026-12-05T18:00:00Z"
//
// An unstamped build falls back to what the go command recorded in the
// binary: the module version for `go install .../cmd/reach@v1.2.3`, and
// vcs.revision and vcs.time for a build in a git checkout (unless
// -buildvcs=false).
package version

import (
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Set by the linker with -X; empty when the build was not stamped.
var (
	version string
	commit  string
	date    string
)

// Unknown stands for a field neither the linker nor the build information gave.
const Unknown = "unknown"

// Dev is the version of a build that was neither stamped nor installed at a version.
const Dev = "dev"

// Info describes one build. Every field is set: what is not known reads Dev
// (Version) or Unknown.
type Info struct {
	Version   string `json:"version"`    // v1.2.3, a Go pseudo-version, or dev
	Commit    string `json:"commit"`     // the full commit hash
	Date      string `json:"date"`       // the commit's time, RFC 3339 in UTC
	Modified  bool   `json:"modified"`   // built from a tree with uncommitted changes
	GoVersion string `json:"go_version"` // the toolchain that built it
	Platform  string `json:"platform"`   // GOOS/GOARCH
}

// Get returns this build's Info.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return from(version, commit, date, bi)
}

// from merges the stamped fields with the build information; the stamped
// ones win, field by field.
func from(version, commit, date string, bi *debug.BuildInfo) Info {
	in := Info{Version: version, Commit: commit, Date: date,
		GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi != nil {
		if bi.GoVersion != "" {
			in.GoVersion = bi.GoVersion
		}
		if in.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			in.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision" && in.Commit == "":
				in.Commit = s.Value
			case s.Key == "vcs.time" && in.Date == "":
				in.Date = s.Value
			case s.Key == "vcs.modified" && s.Value == "true" && commit == "":
				in.Modified = true
			}
		}
	}
	// A stamped version marks its own dirtiness (git describe --dirty).
	in.Modified = in.Modified || strings.HasSuffix(in.Version, "+dirty") || strings.HasSuffix(in.Version, "-dirty")
	if t, err := time.Parse(time.RFC3339, in.Date); err == nil {
		in.Date = t.UTC().Format(time.RFC3339)
	}
	in.Version = orDefault(in.Version, Dev)
	in.Commit = orDefault(in.Commit, Unknown)
	in.Date = orDefault(in.Date, Unknown)
	return in
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// String is the line reach version and reach --version print:
// "reach v1.2.3 (commit 0123abcd4567, 2026-12-05T18:00:00Z) go1.26.0 linux/amd64".
func (in Info) String() string {
	c := in.Commit
	if len(c) > 12 {
		c = c[:12]
	}
	if in.Modified && c != Unknown {
		c += "+dirty"
	}
	return "reach " + in.Version + " (commit " + c + ", " + in.Date + ") " + in.GoVersion + " " + in.Platform
}

// UserAgent is what reach sends as its HTTP User-Agent: "reach/v1.2.3".
func (in Info) UserAgent() string { return "reach/" + in.Version }

// UserAgent is Get().UserAgent(), computed once.
var UserAgent = Get().UserAgent()

// Collector returns the reach_build_info gauge, 1, labelled with this
// build's version, commit, date and goversion: join it to any series with
// `* on(instance) group_left(version) reach_build_info` to see what runs where.
func Collector() prometheus.Collector {
	in := Get()
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "reach_build_info",
		Help: "Always 1; its labels say which build of reach serves these metrics.",
		ConstLabels: prometheus.Labels{"version": in.Version, "commit": in.Commit,
			"date": in.Date, "goversion": in.GoVersion},
	})
	g.Set(1)
	return g
}
