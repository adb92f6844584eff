package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/reach-tools/reach/internal/version"
)

// reach version, reach --version and reach version --json say the same.
func TestVersionForms(t *testing.T) {
	want := version.Get()
	code, line, errs := run(t, "version")
	if code != ExitOK || line != want.String()+"\n" || errs != "" {
		t.Fatalf("reach version: exit %d, %q, %q; want %q", code, line, errs, want.String())
	}
	if code, out, _ := run(t, "--version"); code != ExitOK || out != line {
		t.Errorf("reach --version: exit %d, %q; want %q, as reach version", code, out, line)
	}
	code, out, _ := run(t, "version", "--json")
	var got struct {
		Schema string `json:"schema"`
		version.Info
	}
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); code != ExitOK || err != nil {
		t.Fatalf("reach version --json: exit %d, %v: %q", code, err, out)
	}
	if got.Schema != "reach.version/v1" || got.Info != want {
		t.Errorf("reach version --json = %+v, want schema reach.version/v1 and %+v", got, want)
	}
}
