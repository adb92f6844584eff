//go:build !unix

package fault

import "context"

func (h *Host) lock(context.Context) (func(), error) { return nil, ErrUnsupported }
