//go:build !darwin && !windows

package doctor

import (
	"context"
	"fmt"
	"runtime"

	"github.com/reach-tools/reach/firewall"
)

// readForeign: Linux's firewall is netfilter, read by firewall.Commands;
// other systems' are not read.
func readForeign(context.Context) (*ForeignFirewall, error) {
	return nil, fmt.Errorf("%w: no reader for %s's firewall", firewall.ErrNotNetfilter, runtime.GOOS)
}
