// Package k8s holds the Kubernetes manifests of productsd (a kustomize base
// and the dev and prod overlays). It has no code: its tests parse the
// manifests, docker-compose.yml, deploy/nginx.conf and the Dockerfile, resolve
// every overlay as kubectl kustomize would, and check the invariants the
// deployment relies on (DESIGN §1, §5). They need no cluster and no servers.
package k8s
