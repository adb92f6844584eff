package cli

import (
	"errors"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// What reach agent tells the hub of itself: --addr, else the advertised
// address; labels from the Downward API's file, --label winning.
func TestAnnounce(t *testing.T) {
	file := filepath.Join(t.TempDir(), "labels")
	if err := os.WriteFile(file, []byte("role=\"web\"\napp.kubernetes.io/name=\"reach-agent\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addrs, labels, err := announce([]string{"198.18.0.3", "fd00::3"}, []string{"role=db", "zone=z-1"}, file, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := []netip.Addr{netip.MustParseAddr("198.18.0.3"), netip.MustParseAddr("fd00::3")}; !slices.Equal(addrs, want) {
		t.Errorf("addrs %v, want %v", addrs, want)
	}
	if want := map[string]string{"role": "db", "zone": "z-1", "app.kubernetes.io/name": "reach-agent"}; !maps.Equal(labels, want) {
		t.Errorf("labels %v, want %v", labels, want)
	}
	if addrs, labels, err := announce(nil, nil, "", "http://198.18.0.4:7070"); err != nil ||
		!slices.Equal(addrs, []netip.Addr{netip.MustParseAddr("198.18.0.4")}) || labels != nil {
		t.Errorf("from --advertise: %v %v %v", addrs, labels, err)
	}
	if addrs, _, err := announce(nil, nil, "", ""); err != nil || addrs != nil {
		t.Errorf("nothing given: %v %v (want no registration)", addrs, err)
	}
	for _, bad := range []struct {
		addrs, labels []string
		file          string
	}{
		{[]string{"web-1"}, nil, ""},
		{[]string{"198.18.0.3"}, []string{"role"}, ""},
		{[]string{"198.18.0.3"}, []string{"a b=c"}, ""},
		{nil, []string{"role=db"}, ""},
		{[]string{"198.18.0.3"}, nil, filepath.Join(t.TempDir(), "missing")},
	} {
		var ue *UsageError
		if _, _, err := announce(bad.addrs, bad.labels, bad.file, ""); !errors.As(err, &ue) {
			t.Errorf("announce(%v, %v, %q) = %v, want a usage error", bad.addrs, bad.labels, bad.file, err)
		}
	}
}
