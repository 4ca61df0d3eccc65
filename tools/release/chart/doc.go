// Package chart holds the tests of the Helm chart in deploy/helm/edgelink:
// helm lint, helm template with the default and the full values
// (ci/full-values.yaml), every rendered object decoded strictly into its
// Kubernetes API type, and the rendered configurations checked by edgelink
// check. No cluster and no helm binary are needed.
package chart
