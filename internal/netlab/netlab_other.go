//go:build !linux

package netlab

import (
	"errors"
	"os/exec"
	"runtime"
)

var errUnsupported = errors.New("network namespaces are unsupported on " + runtime.GOOS + "; the lab needs Linux")

func supported() error { return errUnsupported }

func enter(string) (func() error, error) { return nil, errUnsupported }

func dieWithParent(*exec.Cmd) {}

func hold(string) (func(), error) { return nil, errUnsupported }

func sweep() {}
