// Package testbed starts real Apache Kafka brokers (KRaft mode, on 127.0.0.1)
// and in-process kfake clusters for edgelink's tests and benchmarks.
//
// The Kafka server jars and their runtime dependencies are fetched from Maven
// Central with Maven into a cache directory reused across runs
// (EDGELINK_CACHE, default: the user cache directory + "/edgelink/kafka/<version>").
// Every broker runs as a child JVM that dies with the process that started it,
// so a panicking or timed-out test never leaves a JVM behind.
//
// Real-Kafka tests call [RequireKafka]: a plain `go test ./...` skips them with
// a message, while EDGELINK_KAFKA=required (set by `make test`) turns any
// failure to start Kafka into a test failure.
package testbed
