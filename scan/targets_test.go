package scan

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/probe"
)

// A name among the exclusions is refused: it is not resolved there, so it
// would silently exclude nothing.
func TestExpandExcludeName(t *testing.T) {
	hosts, err := endpoint.ParseHostList("198.18.0.0/30")
	if err != nil {
		t.Fatal(err)
	}
	exclude, err := endpoint.ParseHostList("198.18.0.1,db.internal")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Expand(context.Background(), hosts, exclude, probe.Options{})
	if !errors.Is(err, ErrExcludeName) || got != nil {
		t.Fatalf("Expand = %v, %v; want ErrExcludeName", got, err)
	}
	if !strings.Contains(err.Error(), "db.internal is not resolved for exclusions, so it would exclude nothing") || !strings.Contains(err.Error(), "give its address, a CIDR or a range") {
		t.Errorf("message %q: want the name and what to give instead", err)
	}
}
