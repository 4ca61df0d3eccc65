// Package e2e holds edgelink's end-to-end scenarios: the edgelink binary runs
// against real Apache Kafka clusters from the test bed while the scenarios
// inject faults (kill -9, concurrent instances, retention deleting data), and
// the record-by-record checker in package verify judges the result.
package e2e
