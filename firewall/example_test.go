package firewall_test

import (
	"fmt"
	"net/netip"

	"github.com/reach-tools/reach/firewall"
)

// Where does a client's connection to port 8080 of this host go? Docker's
// rules send it to a container; the walk says which rule did it.
func ExampleWalk() {
	rs, err := firewall.ParseIptablesSave(`*nat
:PREROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A DOCKER -i docker0 -j RETURN
-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 198.19.0.2:80
COMMIT
`, "ip")
	if err != nil {
		panic(err)
	}
	host := firewall.Host{LocalAddrs: []netip.Prefix{netip.MustParsePrefix("198.18.0.2/32")}}
	conn := firewall.Conn{Src: netip.MustParseAddr("198.18.0.1"), In: "eth0", Dst: netip.MustParseAddrPort("198.18.0.2:8080")}
	p := firewall.Walk(rs, conn, host)
	for _, o := range p.Outcomes {
		fmt.Printf("%s %v (chance %.0f%%), by %q\n", o.Verdict, o.Dst, 100*o.Probability, o.Translation.Text)
		for _, s := range o.Steps {
			fmt.Println("  " + s.String())
		}
	}
	fmt.Println("hook:", p.Hook, "certain:", p.Certain())
	// Output:
	// accept 198.19.0.2:80 (chance 100%), by "-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 198.19.0.2:80"
	//   prerouting nat/PREROUTING: jump DOCKER
	//   prerouting nat/DOCKER: dnat 198.19.0.2:80
	// hook: prerouting certain: true
}
