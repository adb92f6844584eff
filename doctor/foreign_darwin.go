//go:build darwin

package doctor

import "context"

// alf is the Application Firewall's tool.
const alf = "/usr/libexec/ApplicationFirewall/socketfilterfw"

// readForeign reads pf's rules and status (both need root; without it
// the check says so) and the Application Firewall's state.
func readForeign(ctx context.Context) (*ForeignFirewall, error) {
	sr, srErr := runTool(ctx, "pfctl", "-sr")
	si, siErr := runTool(ctx, "pfctl", "-si")
	st, stErr := runTool(ctx, alf, "--getglobalstate", "--getblockall", "--getstealthmode")
	return readDarwin(sr, srErr, si, siErr, st, stErr), nil
}
