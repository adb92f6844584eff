package sockets

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParseProxy(t *testing.T) {
	ap := netip.MustParseAddrPort
	for _, tc := range []struct {
		cmdline string
		want    Forward
		ok      bool
	}{
		{"/usr/bin/docker-proxy -proto tcp -host-ip 0.0.0.0 -host-port 8080 -container-ip 172.17.0.2 -container-port 80",
			Forward{Proxy: "docker-proxy", Listen: ap("0.0.0.0:8080"), To: ap("172.17.0.2:80")}, true},
		{"docker-proxy -proto tcp -host-ip 127.0.0.1 -host-port 9090 -container-ip 198.19.0.2 -container-port 90 -use-listen-fd",
			Forward{Proxy: "docker-proxy", Listen: ap("127.0.0.1:9090"), To: ap("198.19.0.2:90")}, true},
		{"docker-proxy --proto=tcp --host-ip=:: --host-port=443 --container-ip=fd00::2 --container-port=8443",
			Forward{Proxy: "docker-proxy", Listen: ap("[::]:443"), To: ap("[fd00::2]:8443")}, true},
		{"docker-proxy -proto udp -host-ip 0.0.0.0 -host-port 53 -container-ip 172.17.0.2 -container-port 53", Forward{}, false},
		{"docker-proxy -proto tcp -host-port 8080 -container-ip web -container-port 80", Forward{}, false},
		{"docker-proxy -proto tcp -host-port 8080 -container-ip 172.17.0.2", Forward{}, false},
		{"socat TCP-LISTEN:8080,fork,reuseaddr TCP:198.19.0.2:80",
			Forward{Proxy: "socat", Listen: ap("0.0.0.0:8080"), To: ap("198.19.0.2:80")}, true},
		{"/usr/bin/socat -d -d tcp4:198.19.0.2:80 tcp4-listen:8080,fork",
			Forward{Proxy: "socat", Listen: ap("0.0.0.0:8080"), To: ap("198.19.0.2:80")}, true},
		{"socat TCP6-LISTEN:8080,fork TCP:[fd00::2]:80",
			Forward{Proxy: "socat", Listen: ap("[::]:8080"), To: ap("[fd00::2]:80")}, true},
		{"socat TCP-LISTEN:8080 TCP:db.internal:5432", Forward{}, false},
		{"socat STDIO TCP:198.19.0.2:80", Forward{}, false},
		{"nginx -g daemon off;", Forward{}, false},
		{"", Forward{}, false},
	} {
		got, ok := ParseProxy(strings.Fields(tc.cmdline))
		if ok != tc.ok || got != tc.want {
			t.Errorf("%q: %+v, %v; want %+v, %v", tc.cmdline, got, ok, tc.want, tc.ok)
		}
	}
}

func FuzzParseProxy(f *testing.F) {
	f.Add("docker-proxy\x00-proto\x00tcp\x00-host-ip\x000.0.0.0\x00-host-port\x008080\x00-container-ip\x00172.17.0.2\x00-container-port\x0080")
	f.Add("socat\x00TCP-LISTEN:8080,fork\x00TCP:198.19.0.2:80")
	f.Fuzz(func(t *testing.T, cmdline string) {
		fw, ok := ParseProxy(strings.Split(cmdline, "\x00"))
		if ok && (fw.Listen.Port() == 0 || fw.To.Port() == 0 || !fw.To.Addr().IsValid() || fw.Proxy == "") {
			t.Errorf("%q: %+v", cmdline, fw)
		}
	})
}
