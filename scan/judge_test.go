package scan

import "testing"

// A host the port scan judged takes the best answer one of its ports gave.
func TestPortsReason(t *testing.T) {
	ports := func(reasons ...string) []Port {
		var out []Port
		for _, r := range reasons {
			out = append(out, Port{Reason: r})
		}
		return out
	}
	tests := []struct {
		h    Host
		want string
	}{
		{Host{State: HostUp, Ports: ports(ReasonNoResponse, ReasonConnRefused, ReasonSynAck)}, ReasonSynAck},
		{Host{State: HostUp, Ports: ports(ReasonAdminProhibited, ReasonConnRefused)}, ReasonConnRefused},
		{Host{State: HostUp, Ports: ports(ReasonNoResponse, ReasonAdminProhibited)}, ReasonAdminProhibited},
		{Host{State: HostNoAnswer, Ports: ports(ReasonNoResponse)}, ReasonNoResponse},
		{Host{State: HostLocalError, Ports: ports(ReasonLocalProhibited)}, ReasonLocalProhibited},
		{Host{State: HostUnknown}, ""},
	}
	for _, tt := range tests {
		if got := portsReason(tt.h); got != tt.want {
			t.Errorf("portsReason(%s %v) = %q, want %q", tt.h.State, tt.h.Ports, got, tt.want)
		}
	}
}
