package fault

import (
	"context"
	"time"
)

// removeTimeout bounds the removal after a run's context is canceled.
const removeTimeout = 15 * time.Second

// Run applies spec, calls started with the fault, waits until spec.For has
// passed or ctx is canceled (Ctrl-C), then removes the fault. The removal
// runs even after ctx is canceled, bounded by its own timeout. It returns
// ctx's error when the fault was ended early.
func (h *Host) Run(ctx context.Context, spec Spec, started func(Active)) error {
	a, err := h.Apply(ctx, spec)
	if err != nil {
		return err
	}
	if started != nil {
		started(a)
	}
	t := time.NewTimer(spec.For)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), removeTimeout)
	defer cancel()
	if err := h.Remove(rctx, a.ID); err != nil {
		return err
	}
	h.log().Info("fault removed", "id", a.ID, "mode", string(a.Mode), "port", a.Port,
		"why", map[bool]string{true: "ended early", false: "expired"}[ctx.Err() != nil])
	return ctx.Err()
}

// WatchGrace is how long after a fault's expiry its watcher still waits
// for the owner to remove it, before removing it itself.
const WatchGrace = 2 * time.Second

// Watch is the remover a detached process runs beside a fault's owner: it
// removes fault a as soon as its owner is gone (killed) and at the latest
// WatchGrace after its expiry, then returns. It returns early when the
// fault's rules are gone (the owner removed them, or a clear did). It
// never lives past the expiry plus WatchGrace (a fault lasts at most
// MaxFor), whatever ctx says. poll is how often it looks (0: 250 ms).
func (h *Host) Watch(ctx context.Context, a Active, poll time.Duration) error {
	if poll <= 0 {
		poll = 250 * time.Millisecond
	}
	end := a.Expires.Add(WatchGrace)
	ctx, cancel := context.WithDeadline(ctx, end)
	defer cancel()
	tick := time.NewTicker(poll)
	defer tick.Stop()
	checks := 0
	for {
		select {
		case <-ctx.Done():
		case <-tick.C:
			checks++
			if h.alive(a.Owner) {
				if checks%8 != 0 { // every 2 s at the default poll: is the fault still there?
					continue
				}
				list, err := h.List(ctx)
				if err == nil && !hasID(list, a.ID) {
					return nil
				}
				continue
			}
		}
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), removeTimeout)
		defer rcancel()
		return h.Remove(rctx, a.ID)
	}
}

func hasID(list []Active, id string) bool {
	for _, a := range list {
		if a.ID == id {
			return true
		}
	}
	return false
}
