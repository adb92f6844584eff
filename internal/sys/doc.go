// Package sys is the only importer of golang.org/x/sys/unix: the few raw
// system interfaces reach needs (netlink requests, namespaces) live here,
// behind small functions, with Linux code in _linux.go files.
package sys

import "errors"

// ErrUnsupported is returned on operating systems without the facility.
var ErrUnsupported = errors.New("sys: unsupported on this OS")
