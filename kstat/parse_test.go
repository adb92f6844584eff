package kstat

import (
	"errors"
	"maps"
	"os"
	"strings"
	"testing"
)

func readFile(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseCounters(t *testing.T) {
	c := map[string]int64{}
	if err := parseCounters(readFile(t, "netstat-6.18"), c); err != nil {
		t.Fatal(err)
	}
	if err := parseCounters(readFile(t, "snmp-6.18"), c); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]int64{
		ListenOverflows: 12, ListenDrops: 14, SyncookiesSent: 3, SyncookiesRecv: 2, SyncookiesFailed: 1,
		AttemptFails: 7, "Tcp.MaxConn": -1, "Ip.DefaultTTL": 64, "Tcp.RtoMin": 200,
	} {
		if got, ok := c[k]; !ok || got != want {
			t.Errorf("%s = %d (present %v), want %d", k, got, ok, want)
		}
	}
	for _, group := range []string{"Ip.", "Icmp.", "IcmpMsg.", "Tcp.", "Udp.", "UdpLite.", "TcpExt.", "IpExt.", "MPTcpExt."} {
		if !hasPrefix(c, group) {
			t.Errorf("no counter of group %s", group)
		}
	}
}

func hasPrefix(m map[string]int64, p string) bool {
	for k := range m {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
}

func TestParseCountersErrors(t *testing.T) {
	for _, in := range []string{
		"TcpExt: A B\n",                             // no values line
		"TcpExt: A B\nTcpExt: 1\n",                  // fewer values
		"TcpExt: A B\nIpExt: 1 2\n",                 // groups do not pair
		"TcpExt: A B\nTcpExt: 1 x\n",                // not a number
		"TcpExt A B\nTcpExt 1 2\n",                  // no colon
		"TcpExt: A\nTcpExt: 99999999999999999999\n", // above 2^64
		"\n\n",
	} {
		if err := parseCounters(in, map[string]int64{}); !errors.Is(err, ErrSyntax) {
			t.Errorf("parseCounters(%q) = %v, want ErrSyntax", in, err)
		}
	}
	c := map[string]int64{}
	if err := parseCounters("TcpExt: Big\nTcpExt: 18446744073709551615\n", c); err != nil || c["TcpExt.Big"] != -1 {
		t.Errorf("2^64-1: %v, %d; want its bits, -1", err, c["TcpExt.Big"])
	}
}

func TestParseConntrackStat(t *testing.T) {
	tests := []struct {
		file string
		want map[string]int64
	}{
		{"nf_conntrack-6.18", map[string]int64{
			"clashres": 1, "found": 0, "new": 0, "invalid": 0x2a + 0x16, "ignore": 0, "delete": 0, "chainlength": 4,
			"insert": 0, "insert_failed": 5, "drop": 0x15, "early_drop": 0x2e, "icmp_error": 0,
			"expect_new": 0, "expect_create": 0, "expect_delete": 0, "search_restart": 2,
		}},
		{"nf_conntrack-4.19", map[string]int64{
			"searched": 0, "found": 0x7b3c1 + 0x8c13e + 0x795d0 + 0x80c57, "new": 0,
			"invalid": 0x455 + 0x4e1 + 0x45b + 0x4ac, "ignore": 0x22ca9 + 0x1ed33 + 0x1e8fa + 0x21bd0,
			"delete": 0, "delete_list": 0, "insert": 0, "insert_failed": 0, "drop": 3, "early_drop": 1,
			"icmp_error": 0, "expect_new": 0, "expect_create": 0, "expect_delete": 0,
			"search_restart": 0x4d + 0x60 + 0x47 + 0x51,
		}},
	}
	for _, tt := range tests {
		got, err := parseConntrackStat(readFile(t, tt.file))
		if err != nil {
			t.Fatalf("%s: %v", tt.file, err)
		}
		if !maps.Equal(got, tt.want) {
			t.Errorf("%s:\ngot  %v\nwant %v", tt.file, got, tt.want)
		}
	}
	for _, in := range []string{
		"",
		"entries drop\n",                         // no CPU
		"entries drop\n00000001\n",               // short line
		"entries drop\n00000001 0000000g\n",      // not hex
		"00000001 00000002\n00000001 00000002\n", // no heading
		"entries drop drop\n1 2 3\n",             // a column twice
	} {
		if _, err := parseConntrackStat(in); !errors.Is(err, ErrSyntax) {
			t.Errorf("parseConntrackStat(%q) = %v, want ErrSyntax", in, err)
		}
	}
}

func TestParsePortRange(t *testing.T) {
	for in, want := range map[string]PortRange{
		"32768\t60999\n": {32768, 60999}, "1024 65535": {1024, 65535}, "40000 40000\n": {40000, 40000},
	} {
		if got, err := parsePortRange(in); err != nil || got != want {
			t.Errorf("parsePortRange(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "32768", "60999 32768", "1 2 3", "0 70000", "-1 5", "a b"} {
		if got, err := parsePortRange(in); !errors.Is(err, ErrSyntax) {
			t.Errorf("parsePortRange(%q) = %v, %v; want ErrSyntax", in, got, err)
		}
	}
	if n := (PortRange{32768, 60999}).Size(); n != 28232 {
		t.Errorf("Size = %d", n)
	}
}

func FuzzParseCounters(f *testing.F) {
	f.Add(readFile(f, "netstat-6.18"))
	f.Add(readFile(f, "snmp-6.18"))
	f.Add("Tcp: A\nTcp: -1\n")
	f.Fuzz(func(t *testing.T, text string) {
		c := map[string]int64{}
		if err := parseCounters(text, c); err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("%q: error %v is not ErrSyntax", text, err)
			}
			return
		}
		for k := range c {
			group, name, ok := strings.Cut(k, ".")
			if !ok || group == "" || name == "" || !strings.Contains(text, group+":") || !strings.Contains(text, name) {
				t.Fatalf("%q: key %q not from the text", text, k)
			}
		}
	})
}

func FuzzParseConntrackStat(f *testing.F) {
	f.Add(readFile(f, "nf_conntrack-6.18"))
	f.Add(readFile(f, "nf_conntrack-4.19"))
	f.Fuzz(func(t *testing.T, text string) {
		stats, err := parseConntrackStat(text)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("%q: error %v is not ErrSyntax", text, err)
			}
			return
		}
		if _, ok := stats["entries"]; ok {
			t.Fatalf("%q: entries kept", text)
		}
		for k := range stats {
			if k == "" || !strings.Contains(text, k) {
				t.Fatalf("%q: column %q not from the text", text, k)
			}
		}
	})
}

func FuzzParsePortRange(f *testing.F) {
	f.Add("32768\t60999\n")
	f.Fuzz(func(t *testing.T, text string) {
		p, err := parsePortRange(text)
		if err == nil && (p.Low > p.High || p.Size() < 1) {
			t.Fatalf("%q: range %v", text, p)
		}
	})
}
