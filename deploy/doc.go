// Package deploy holds no code: its tests check the Helm chart in
// helm/tokenwatt. They run `helm lint` and `helm template` (the helm on
// PATH; scripts/helm builds the pinned one) over every documented values
// combination, decode every rendered object strictly into its Kubernetes
// or Prometheus Operator Go type, and check that the chart's copies of
// prometheus/rules/*.yml and grafana/dashboards/*.json, which `go
// generate ./deploy` writes, equal their sources.
package deploy

//go:generate go run copyfiles.go
