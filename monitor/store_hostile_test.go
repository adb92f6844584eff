package monitor

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
)

// Issue 11, row 9: two reach watch on one store both ran and stored every
// sample twice. The second is refused, naming the first; closing the first
// frees the store.
func TestHostileSecondWriter(t *testing.T) {
	forEachStore(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		var logs bytes.Buffer
		log := slog.New(slog.NewTextHandler(&logs, nil))
		first, err := OpenExclusive(ctx, dsn, log)
		if err != nil {
			t.Fatal(err)
		}
		defer first.Close()
		second, err := OpenExclusive(ctx, dsn, log)
		var iu *InUseError
		if err == nil {
			second.Close()
			t.Fatal("a second writer opened the store")
		}
		if !errors.Is(err, ErrInUse) || !errors.As(err, &iu) || iu.PID != os.Getpid() ||
			!strings.Contains(err.Error(), "(pid "+strconv.Itoa(os.Getpid())+", ") {
			t.Fatalf("got %v (%+v), want an InUseError naming pid %d", err, iu, os.Getpid())
		}
		if strings.HasPrefix(dsn, "postgres") && (!strings.Contains(err.Error(), "replicas") || strings.Contains(err.Error(), "password")) {
			t.Errorf("postgres: %v", err)
		}
		// Readers still open it as before.
		r, err := OpenStore(ctx, dsn)
		if err != nil {
			t.Fatalf("reader: %v", err)
		}
		r.Close()
		first.Close()
		again, err := OpenExclusive(ctx, dsn, log)
		if err != nil {
			t.Fatalf("after the first closed: %v", err)
		}
		again.Close()
		if strings.Contains(logs.String(), "took over") {
			t.Errorf("a clean close left its pid behind:\n%s", logs.String())
		}
	})
}

// A lock file left by a process that ended without releasing it (kill -9)
// holds no lock: it is taken over, with a log line naming the old pid.
func TestHostileStaleLockFile(t *testing.T) {
	path := t.TempDir() + "/reach.db"
	if err := os.WriteFile(path+".lock", []byte("pid 4194999\nsince 2026-01-02T03:04:05Z\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	s, err := OpenExclusive(context.Background(), path, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "took over the lock") || !strings.Contains(logs.String(), "pid=4194999") {
		t.Errorf("no log line naming the old pid:\n%s", logs.String())
	}
	b, _ := os.ReadFile(path + ".lock")
	if !strings.HasPrefix(string(b), "pid "+strconv.Itoa(os.Getpid())+"\n") {
		t.Errorf("lock file holds %q, want this pid", b)
	}
	s.Close()
	if b, _ := os.ReadFile(path + ".lock"); len(b) != 0 {
		t.Errorf("after Close the lock file holds %q, want it empty", b)
	}
}
