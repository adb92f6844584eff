package sockets

import (
	"net/netip"
)

// Peer is a network namespace wired to the caller's by a device whose
// other end is there: a veth pair, as Docker, Podman and Kubernetes' CNI
// plugins give each container or pod. Those are the namespaces a DNAT rule
// or a userland proxy of the host can lead to.
type Peer struct {
	Namespace Namespace `json:"namespace"`
	// Addresses are the namespace's own interface addresses, with their
	// prefix lengths (its loopback's included).
	Addresses []netip.Prefix `json:"addresses"`
	// Link is the caller's end of the pair ("veth3f2a1b"), Bridge the
	// bridge that end is on ("docker0"), empty when none.
	Link   string `json:"link"`
	Bridge string `json:"bridge,omitempty"`
}

// Has reports whether addr is one of the namespace's own addresses.
func (p *Peer) Has(addr netip.Addr) bool {
	addr = addr.Unmap().WithZone("")
	for _, a := range p.Addresses {
		if a.Addr().Unmap().WithZone("") == addr {
			return true
		}
	}
	return false
}

// Peers is what ListPeers found.
type Peers struct {
	Peers []Peer `json:"peers"`
	// Sockets are the sockets the options select in every peer, each with
	// its Namespace (pointing into Peers) and Container.
	Sockets []Socket `json:"sockets"`
	// NotSeen are peers that could not be listed: a pair whose other end
	// is in a namespace reach could not find or enter (without root, those
	// of other users' processes), or one that went away meanwhile.
	// Warnings say it in words, with what could not be read of the rest.
	NotSeen  []NotSeen `json:"not_seen,omitempty"`
	Warnings []string  `json:"warnings,omitempty"`
}
