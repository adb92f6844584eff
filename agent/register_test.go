package agent

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestRegistrationCheck(t *testing.T) {
	ok := Registration{Name: "web-1", Addrs: []netip.Addr{netip.MustParseAddr("198.18.0.1")},
		Labels:    map[string]string{"role": "web", "topology.kubernetes.io/zone": "z-1", "empty": ""},
		Advertise: "http://198.18.0.1:7070", Run: 1}
	if err := ok.Check(); err != nil {
		t.Fatalf("a valid registration is refused: %v", err)
	}
	many := map[string]string{}
	for i := range MaxLabels + 1 {
		many["k"+strings.Repeat("x", i%5)+string(rune('a'+i%26))+string(rune('a'+i/26))] = "v"
	}
	five := []netip.Addr{}
	for i := range 5 {
		five = append(five, netip.AddrFrom4([4]byte{198, 18, 0, byte(i + 1)}))
	}
	for _, tc := range []struct {
		name  string
		edit  func(r *Registration)
		field string
	}{
		{"bad name", func(r *Registration) { r.Name = "-web" }, "name"},
		{"long name", func(r *Registration) { r.Name = strings.Repeat("a", 65) }, "name"},
		{"no addr", func(r *Registration) { r.Addrs = nil }, "addrs"},
		{"too many addrs", func(r *Registration) { r.Addrs = five }, "addrs"},
		{"invalid addr", func(r *Registration) { r.Addrs = []netip.Addr{{}} }, "addrs[0]"},
		{"loopback", func(r *Registration) { r.Addrs = []netip.Addr{netip.MustParseAddr("127.0.0.1")} }, "addrs[0]"},
		{"link-local", func(r *Registration) { r.Addrs = []netip.Addr{netip.MustParseAddr("169.254.169.254")} }, "addrs[0]"},
		{"unspecified", func(r *Registration) { r.Addrs = []netip.Addr{netip.MustParseAddr("::")} }, "addrs[0]"},
		{"zone", func(r *Registration) { r.Addrs = []netip.Addr{netip.MustParseAddr("fd00::1%eth0")} }, "addrs[0]"},
		{"twice", func(r *Registration) { r.Addrs = append(r.Addrs, r.Addrs[0]) }, "addrs[1]"},
		{"label key space", func(r *Registration) { r.Labels = map[string]string{"a b": "x"} }, `labels["a b"]`},
		{"label key upper prefix", func(r *Registration) { r.Labels = map[string]string{"Example.com/a": "x"} }, `labels["Example.com/a"]`},
		{"label key long", func(r *Registration) { r.Labels = map[string]string{strings.Repeat("a", 64): "x"} }, "labels["},
		{"label key empty name", func(r *Registration) { r.Labels = map[string]string{"example.com/": "x"} }, "labels["},
		{"label value dash end", func(r *Registration) { r.Labels = map[string]string{"a": "x-"} }, `labels["a"]`},
		{"label value long", func(r *Registration) { r.Labels = map[string]string{"a": strings.Repeat("v", 64)} }, `labels["a"]`},
		{"too many labels", func(r *Registration) { r.Labels = many }, "labels"},
		{"advertise elsewhere", func(r *Registration) { r.Advertise = "http://198.18.0.9:7070" }, "advertise"},
		{"advertise name", func(r *Registration) { r.Advertise = "http://web-1:7070" }, "advertise"},
		{"advertise path", func(r *Registration) { r.Advertise = "http://198.18.0.1:7070/x" }, "advertise"},
		{"no run", func(r *Registration) { r.Run = 0 }, "run"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ok
			r.Addrs = append([]netip.Addr(nil), ok.Addrs...)
			tc.edit(&r)
			err := r.Check()
			var re *RegistrationError
			if !errors.As(err, &re) || !errors.Is(err, ErrRegistration) {
				t.Fatalf("Check() = %v, want a *RegistrationError", err)
			}
			if !strings.HasPrefix(re.Field, tc.field) {
				t.Errorf("field %q, want %q (%v)", re.Field, tc.field, err)
			}
		})
	}
}

func TestParseLabels(t *testing.T) {
	got, err := ParseLabels([]byte("app.kubernetes.io/name=\"reach-agent\"\n\nrole=\"db\"\n" +
		"pod-template-hash=\"\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got["app.kubernetes.io/name"] != "reach-agent" || got["role"] != "db" {
		t.Fatalf("ParseLabels = %v", got)
	}
	for _, bad := range []string{
		"role=db\n",                 // not quoted
		"role\n",                    // no =
		"role=\"db\"\nrole=\"x\"\n", // twice
		"role=\"d b\"\n",            // a value Kubernetes refuses
		"a b=\"x\"\n",               // a key Kubernetes refuses
		"role=\"db\n",               // unterminated
		strings.Repeat("x", MaxLabelsFile+1) + "=\"\"\n",
	} {
		if l, err := ParseLabels([]byte(bad)); !errors.Is(err, ErrLabelsFile) {
			t.Errorf("ParseLabels(%.40q) = %v, %v; want ErrLabelsFile", bad, l, err)
		}
	}
}

func FuzzParseLabels(f *testing.F) {
	f.Add([]byte("app=\"reach\"\nzone=\"z-1\"\n"))
	f.Add([]byte("a.b/c=\"\\u00e9\"\n"))
	f.Add([]byte("=\"\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := ParseLabels(b)
		if err != nil {
			return
		}
		if len(l) > MaxLabels {
			t.Fatalf("%d labels", len(l))
		}
		if err := CheckLabels(l); err != nil {
			t.Fatalf("ParseLabels kept labels CheckLabels refuses: %v", err)
		}
		r := Registration{Name: "a", Addrs: []netip.Addr{netip.MustParseAddr("198.18.0.1")}, Labels: l, Run: 1}
		if err := r.Check(); err != nil {
			t.Fatalf("parsed labels make a registration invalid: %v", err)
		}
	})
}
