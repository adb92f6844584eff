//go:build !linux

package netlab

import "os"

func openTap(*Host, string) (*os.File, error) { return nil, errUnsupported }
