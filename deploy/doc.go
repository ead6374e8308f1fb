// Package deploy checks the deployment files of productcache with the real
// tools' libraries: every kustomize overlay under k8s/ rendered by krusty
// (and compared with kubectl kustomize where kubectl exists), each object
// decoded strictly into its Kubernetes or Prometheus Operator type,
// docker-compose.yml loaded by compose-go, the nginx configuration, and the
// alert rules and Grafana dashboard against the metrics a real productsd
// exports. Its heavy dependencies live in this nested module so the
// service's own module does not carry them.
package deploy
