package endpoint

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
)

func TestParseEndpoint(t *testing.T) {
	tests := []struct {
		in      string
		def     uint16
		want    Endpoint
		wantErr error
		msg     string
	}{
		{in: "db:5432", want: Endpoint{"db", 5432}},
		{in: "db.internal.example:80", want: Endpoint{"db.internal.example", 80}},
		{in: "127.0.0.1:7", want: Endpoint{"127.0.0.1", 7}},
		{in: "[::1]:22", want: Endpoint{"::1", 22}},
		{in: "[fd00::2]", def: 443, want: Endpoint{"fd00::2", 443}},
		{in: "fd00::2", def: 80, want: Endpoint{"fd00::2", 80}},
		{in: "  web  ", def: 8080, want: Endpoint{"web", 8080}},
		{in: "_srv.db:1", want: Endpoint{"_srv.db", 1}},
		{in: "host.:65535", want: Endpoint{"host.", 65535}},
		{in: "db:ssh", want: Endpoint{"db", 22}},
		{in: "db:99999", wantErr: ErrPortRange, msg: `"db:99999": port out of range 1-65535`},
		{in: "db:0", wantErr: ErrPortRange},
		{in: "db:-1", wantErr: ErrPortRange},
		{in: "db:", wantErr: ErrSyntax, msg: `"db:": empty port after ':'`},
		{in: "db", wantErr: ErrMissingPort, msg: `"db": missing port; want host:port (e.g. db:443)`},
		{in: "", wantErr: ErrSyntax},
		// A bare IPv6 literal, not host:port; the port people meant is
		// likely the last group, so say how to write that.
		{in: "::1:22", wantErr: ErrMissingPort, msg: `"::1:22": missing port; want host:port (e.g. [::1:22]:443); if 22 is the port, write [::1]:22`},
		{in: "fe80::2", wantErr: ErrMissingPort, msg: `"fe80::2": missing port; want host:port (e.g. [fe80::2]:443)`},
		{in: "fd00::1:2:3:4:5:6:7", wantErr: ErrSyntax},
		{in: "[::1", wantErr: ErrSyntax},
		{in: "[db]:1", wantErr: ErrSyntax},
		{in: "[::1]x", wantErr: ErrSyntax},
		{in: "[::1]:", wantErr: ErrSyntax},
		{in: "http://db:5432/x", wantErr: ErrSyntax, msg: `"http://db:5432/x": looks like a URL; give host:port (e.g. db:5432)`},
		{in: "https://web", wantErr: ErrSyntax, msg: `"https://web": looks like a URL; give host:port (e.g. web:443)`},
		{in: "d b:1", wantErr: ErrBadHost},
		{in: "-db:1", wantErr: ErrBadHost},
		{in: "a..b:1", wantErr: ErrBadHost},
		{in: "1.2.3.256:1", wantErr: ErrBadHost},
		{in: "db:nosuchservice", wantErr: ErrSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseEndpoint(tt.in, tt.def)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ParseEndpoint(%q) error = %v, want %v", tt.in, err, tt.wantErr)
				}
				var pe *ParseError
				if !errors.As(err, &pe) || pe.Input != tt.in {
					t.Fatalf("error %v is not a *ParseError for %q", err, tt.in)
				}
				if tt.msg != "" && err.Error() != tt.msg {
					t.Fatalf("message = %q, want %q", err.Error(), tt.msg)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseEndpoint(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestEndpointString(t *testing.T) {
	for _, e := range []Endpoint{{"::1", 22}, {"db", 5432}, {"198.18.0.1", 80}} {
		back, err := ParseEndpoint(e.String(), 0)
		if err != nil || back != e {
			t.Errorf("round trip %v -> %q -> %v, %v", e, e.String(), back, err)
		}
	}
	ap, ok := Endpoint{"::ffff:127.0.0.1", 9}.AddrPort()
	if !ok || ap != netip.MustParseAddrPort("127.0.0.1:9") {
		t.Errorf("AddrPort unmaps v4-in-v6: got %v %v", ap, ok)
	}
	if _, ok := (Endpoint{"db", 1}).Addr(); ok {
		t.Error("a name is not an address")
	}
}

func TestParsePorts(t *testing.T) {
	tests := []struct {
		in      string
		want    []uint16
		n       int
		wantErr error
	}{
		{in: "22", want: []uint16{22}},
		{in: "80,22,80", want: []uint16{22, 80}},
		{in: "8000-8003, 22", want: []uint16{22, 8000, 8001, 8002, 8003}},
		{in: "-3", want: []uint16{1, 2, 3}},
		{in: "65534-", want: []uint16{65534, 65535}},
		{in: "-", n: 65535},
		{in: "ssh,https", want: []uint16{22, 443}},
		{in: "", wantErr: ErrSyntax},
		{in: "22,", wantErr: ErrSyntax},
		{in: "0", wantErr: ErrPortRange},
		{in: "70000", wantErr: ErrPortRange},
		{in: "100-10", wantErr: ErrSyntax},
		{in: "1-2-3", wantErr: ErrSyntax},
		{in: "a-b", wantErr: ErrSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePorts(tt.in)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ParsePorts(%q) error = %v, want %v", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePorts(%q): %v", tt.in, err)
			}
			if tt.n != 0 {
				if len(got) != tt.n {
					t.Fatalf("len = %d, want %d", len(got), tt.n)
				}
				return
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("ParsePorts(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestFormatPorts(t *testing.T) {
	if got := FormatPorts([]uint16{8001, 22, 8000, 8002, 80, 22}); got != "22,80,8000-8002" {
		t.Fatalf("FormatPorts = %q", got)
	}
}

func FuzzParseEndpoint(f *testing.F) {
	for _, s := range []string{"db:5432", "[::1]:22", "fd00::1", "127.0.0.1:0", "a..b", "http://x", "[x]:1", "db:ssh"} {
		f.Add(s, uint16(0))
	}
	f.Fuzz(func(t *testing.T, s string, def uint16) {
		e, err := ParseEndpoint(s, def)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Input != s {
				t.Fatalf("error %v does not carry the input", err)
			}
			return
		}
		if e.Port == 0 {
			t.Fatalf("accepted port 0 from %q", s)
		}
		back, err := ParseEndpoint(e.String(), 0)
		if err != nil || back != e {
			t.Fatalf("%q -> %v -> %q -> %v, %v", s, e, e.String(), back, err)
		}
		// Differential: whatever net/netip accepts as addr:port we accept identically.
		if ap, err := netip.ParseAddrPort(s); err == nil && ap.Port() != 0 {
			if got, ok := e.AddrPort(); !ok || got != netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()) {
				t.Fatalf("%q: netip says %v, we say %v", s, ap, e)
			}
		}
	})
}

func FuzzParsePorts(f *testing.F) {
	for _, s := range []string{"22", "1-1024", "-", "80,443,8000-8100", "65535-", "ssh"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ports, err := ParsePorts(s)
		if err != nil {
			return
		}
		if len(ports) == 0 || !slices.IsSorted(ports) || ports[0] == 0 {
			t.Fatalf("%q -> bad list %v", s, ports)
		}
		back, err := ParsePorts(FormatPorts(ports))
		if err != nil || !slices.Equal(back, ports) {
			t.Fatalf("%q: format round trip failed: %v", s, err)
		}
	})
}
