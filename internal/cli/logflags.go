package cli

import (
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/pflag"
)

// logFlags are --log-level and --log-format, shared by every long-running
// command (serve, watch, agent, fault) so each logs through one slog
// handler: text for people, JSON Lines for a log pipeline.
type logFlags struct {
	level, format string
}

// add registers the flags; level is the command's default.
func (l *logFlags) add(f *pflag.FlagSet, level string) {
	f.StringVar(&l.level, "log-level", level, "log `LEVEL`: debug, info, warn or error (messages below it are dropped)")
	f.StringVar(&l.format, "log-format", "text", "log `FORMAT`: text (key=value lines) or json (one JSON object a line)")
}

// logger builds the logger the flags ask for, writing to w; a bad value is a
// usage error naming the flag and the values it takes.
func (l *logFlags) logger(w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	switch strings.ToLower(l.level) {
	case "debug":
		lvl = slog.LevelDebug
	case "info":
		lvl = slog.LevelInfo
	case "warn", "warning":
		lvl = slog.LevelWarn
	case "error":
		lvl = slog.LevelError
	default:
		return nil, usageErrorf("--log-level %q: use debug, info, warn or error", l.level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch l.format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usageErrorf("--log-format %q: use text or json", l.format)
}
