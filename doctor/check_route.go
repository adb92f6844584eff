package doctor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"

	"github.com/reach-tools/reach/internal/sys"
)

// RouteCheck asks the kernel how it would route to each address (ip route get).
var RouteCheck = CheckFunc{
	CheckName: "route",
	ReadsFrom: []string{"dns"}, // the addresses
	Fn:        checkRoute,
}

func checkRoute(ctx context.Context, s *State) CheckResult {
	if r, ok := needAddrs(s); !ok {
		return r
	}
	s.Routes = make([]RouteInfo, len(s.Addrs))
	each(len(s.Addrs), func(i int) {
		s.Options.enter(func() error {
			from := sys.RouteFrom{Src: s.Options.Source}
			if s.Options.Interface != "" {
				ifc, err := net.InterfaceByName(s.Options.Interface)
				if err != nil {
					s.Routes[i] = RouteInfo{Route: sys.Route{Dst: s.Addrs[i]}, Err: err}
					return nil
				}
				from.OIF = ifc.Index
			}
			r, err := sys.RouteGetFrom(ctx, s.Addrs[i], from)
			s.Routes[i] = RouteInfo{Route: r, Err: err}
			if ifc, err := net.InterfaceByIndex(r.IfIndex); r.IfIndex != 0 && err == nil {
				s.Routes[i].Dev = ifc.Name
			}
			return nil
		})
	})
	res := CheckResult{Status: Pass}
	var parts []string
	for i, ri := range s.Routes {
		if errors.Is(ri.Err, sys.ErrUnsupported) {
			return CheckResult{Status: Skip, Detail: "route lookup is not supported on this OS"}
		}
		parts = append(parts, describeRoute(ri))
		if ri.Err == nil {
			continue
		}
		res.Status = Fail
		var errno syscall.Errno
		if !errors.As(ri.Err, &errno) {
			res.Status = Error
			continue
		}
		f := Finding{Cause: NoRoute, Confidence: Confirmed, Addr: s.label(i),
			Issue: fmt.Sprintf("This host has no route to %s", s.Addrs[i])}
		switch ri.Route.Type {
		case "unreachable", "blackhole", "prohibit":
			f.Evidence = fmt.Sprintf("the routing table has %q for %s (ip route get: %v)", ri.Route.Type+" "+ri.Route.Prefix.String(), s.Addrs[i], errno)
			f.Fix = fmt.Sprintf("remove that route (ip route del %s %s) or add a more specific one via a gateway", ri.Route.Type, ri.Route.Prefix)
		default:
			f.Evidence = fmt.Sprintf("ip route get %s: %v; no table entry (and no default route) covers it", s.Addrs[i], errno)
			f.Fix = fmt.Sprintf("add a route (ip route add %s via GATEWAY) or a default route; check the interface is up", netip.PrefixFrom(s.Addrs[i], s.Addrs[i].BitLen()))
		}
		res.Findings = append(res.Findings, f)
	}
	res.Detail = strings.Join(parts, "; ")
	return res
}

func describeRoute(ri RouteInfo) string {
	r := ri.Route
	if ri.Err != nil {
		var errno syscall.Errno
		errors.As(ri.Err, &errno)
		if r.Type != "" {
			return fmt.Sprintf("%s: the routing table has %s %s (%v)", r.Dst, r.Type, r.Prefix, errno)
		}
		if errno != 0 {
			return fmt.Sprintf("%s: no route (%v)", r.Dst, errno)
		}
		return fmt.Sprintf("%s: %v", r.Dst, ri.Err)
	}
	dev := ri.Dev
	if dev == "" {
		dev = fmt.Sprintf("#%d", r.IfIndex)
	}
	switch {
	case r.Type == "local":
		return fmt.Sprintf("%s is this host (dev %s)", r.Dst, dev)
	case r.Gateway.IsValid():
		return fmt.Sprintf("%s via %s dev %s src %s (route %s)", r.Dst, r.Gateway, dev, r.Src, r.Prefix)
	}
	return fmt.Sprintf("%s dev %s src %s (on-link, route %s)", r.Dst, dev, r.Src, r.Prefix)
}
