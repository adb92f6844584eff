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
	for left, want := range map[int]string{2: "0.50000000000", 3: "0.33333333349", 4: "0.25000000000", 7: "0.14285714272"} {
		if got := kubeProbability(left); got != want {
			t.Errorf("kubeProbability(%d) = %s, want %s", left, got, want)
		}
	}
}
