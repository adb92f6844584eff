package sockets

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
)

// List returns the TCP sockets selected by opt with their owning processes,
// as lsof lists them (see LsofArgs for why lsof). Without root lsof sees
// only this user's processes, and no socket lacks a process: TIME_WAIT
// sockets, which none holds, are not listed.
func List(ctx context.Context, opt Options) (Table, error) {
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, "lsof", LsofArgs...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	// lsof exits 1 when it found nothing to list, and also when some of
	// what it looked at vanished; its output is still what it saw.
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1) {
		return Table{}, fmt.Errorf("sockets: lsof: %w (%s)", err, bytes.TrimSpace(errb.Bytes()))
	}
	var socks []Socket
	if err := parseLsof(&out, func(s Socket) error { socks = append(socks, s); return nil }); err != nil {
		return Table{}, err
	}
	var warnings []string
	if os.Geteuid() != 0 {
		warnings = append(warnings, "without root, lsof lists only this user's sockets: "+
			"run sudo reach ports to see every process's")
	}
	return tableOf(socks, opt, "lsof", warnings), nil
}
