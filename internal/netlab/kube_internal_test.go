package netlab

import "testing"

// Chain names that every cluster shows, and the probabilities iptables-save
// prints for kube-proxy's endpoint splits.
func TestKubeNames(t *testing.T) {
	for in, want := range map[string]string{
		"kube-system/kube-dns:dns" + "udp": "TCOU7JCQXEZGVUNU",
		"default/kubernetes:https" + "tcp": "NPX46M4PTMTKRN6Y",
	} {
		if got := kubeHash(in); got != want {
			t.Errorf("kubeHash(%q) = %s, want %s", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"ns1/svc1/tcp/p80":                "ULMVA6XW-ns1/svc1/tcp/p80",
		"ns1/svc1/tcp/p80__10.180.0.1/80": "5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80",
		"ns4/svc4/tcp/p80__10.180.0.4/80": "UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80",
	} {
		if got := kubeNFTHash(in); got != want {
			t.Errorf("kubeNFTHash(%q) = %s, want %s", in, got, want)
		}
	}
	for left, want := range map[int]string{2: "0.50000000000", 3: "0.33333333349", 4: "0.25000000000", 7: "0.14285714272"} {
		if got := kubeProbability(left); got != want {
			t.Errorf("kubeProbability(%d) = %s, want %s", left, got, want)
		}
	}
}
