//go:build !linux

package sockets

import "context"

// ListAllNamespaces is implemented on Linux only; elsewhere it returns
// ErrUnsupported.
func ListAllNamespaces(ctx context.Context, opt Options) (Table, error) {
	return Table{}, ErrUnsupported
}

// ListNamespace is implemented on Linux only; elsewhere it returns
// ErrUnsupported.
func ListNamespace(ctx context.Context, ref NamespaceRef, opt Options) (Table, error) {
	return Table{}, ErrUnsupported
}

// Namespaces is implemented on Linux only; elsewhere it returns
// ErrUnsupported.
func Namespaces(ctx context.Context) ([]Namespace, []NotSeen, error) {
	return nil, nil, ErrUnsupported
}

// ListPeers is implemented on Linux only; elsewhere it returns
// ErrUnsupported.
func ListPeers(ctx context.Context, opt Options) (Peers, error) {
	return Peers{}, ErrUnsupported
}

// LookupNamespace is implemented on Linux only; elsewhere it returns
// ErrUnsupported.
func LookupNamespace(ctx context.Context, ref NamespaceRef) (Namespace, error) {
	return Namespace{}, ErrUnsupported
}
