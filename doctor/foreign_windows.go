//go:build windows

package doctor

import "context"

// readForeign reads the Windows Firewall's profiles and rules with netsh,
// which any user may run.
func readForeign(ctx context.Context) (*ForeignFirewall, error) {
	p, pErr := runTool(ctx, "netsh", "advfirewall", "show", "allprofiles")
	r, rErr := runTool(ctx, "netsh", "advfirewall", "firewall", "show", "rule", "name=all", "verbose")
	return readWindows(p, pErr, r, rErr), nil
}
