package agent

import (
	"context"

	"github.com/reach-tools/reach/sockets"
)

// LocalEvidence gathers what this host shows for port: listening sockets
// and their owners, and the host's addresses. What cannot be seen becomes a
// warning, not an error, so a partial answer still helps.
func LocalEvidence(ctx context.Context, port uint16) (Evidence, error) {
	ev := Evidence{Port: port, Listening: []sockets.Socket{}, Firewall: []string{}, Warnings: []string{}}
	t, err := sockets.List(ctx, sockets.Options{Port: port})
	if err != nil {
		ev.Warnings = append(ev.Warnings, "listening sockets: "+err.Error())
	} else {
		ev.Listening = append(ev.Listening, t.Sockets...)
		ev.Warnings = append(ev.Warnings, t.Warnings...)
	}
	addrs, err := sockets.Addresses()
	if err != nil {
		ev.Warnings = append(ev.Warnings, err.Error())
	}
	ev.Addresses = addrs
	return ev, nil
}
