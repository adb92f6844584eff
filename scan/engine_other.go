//go:build !linux

package scan

import "context"

func run(ctx context.Context, e *engine) error { return ErrUnsupported }
