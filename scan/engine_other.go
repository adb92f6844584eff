//go:build !linux

package scan

import "context"

// haveEpoll says EngineEpoll runs here: it does not, EnginePortable does.
const haveEpoll = false

func runEpoll(ctx context.Context, e *engine) error { return ErrUnsupported }
