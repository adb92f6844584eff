// Package test checks deploy/kubernetes: every manifest decodes strictly
// against the Kubernetes API types (an unknown field is an error), and the
// kustomize base builds to what the project promises (the image set by an
// overlay, the hub's ConfigMap mounted without subPath, probes on /healthz,
// seccomp RuntimeDefault, Pod Security "restricted" for the hub, three
// capabilities for the agent).
//
// It is a module of its own so that the project's module does not depend
// on k8s.io/api. Its build is a kustomize build for the features the base
// and its overlays use (resources, images, labels), written here: the real
// kustomize (sigs.k8s.io/kustomize/api) would bring kube-openapi and its
// dependencies, and a 9-minute first build on a shared 2-core machine.
package test
