package kafka

import "github.com/twmb/franz-go/pkg/kerr"

// kerrOf returns the Kafka error for code, or nil for code 0.
func kerrOf(code int16) error { return kerr.ErrorForCode(code) }
