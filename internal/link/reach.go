package link

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// errUnreachable marks a session ended because the destination stopped
// answering.
var errUnreachable = errors.New("destination unreachable")

// reach tracks whether the destination answers, from the producer's
// connection hooks, so that a link waiting for acknowledgements notices an
// outage (refused or timed-out dials, DNS failures, black holes) within its
// dial timeout instead of waiting out the transaction timeout. franz-go
// retries such failures forever on its own; reach is what turns them into
// a session error the link reports and retries with backoff.
type reach struct {
	mu sync.Mutex
	// failingSince is the first failure since the last successful read;
	// zero while the destination answers.
	failingSince time.Time
	lastErr      error
}

// OnBrokerConnect implements kgo.HookBrokerConnect.
func (r *reach) OnBrokerConnect(meta kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	if err != nil {
		r.failed(fmt.Errorf("connect to %s:%d: %w", meta.Host, meta.Port, err))
	}
}

// OnBrokerRead implements kgo.HookBrokerRead.
func (r *reach) OnBrokerRead(meta kgo.BrokerMetadata, _ int16, _ int, _, _ time.Duration, err error) {
	if err != nil {
		r.failed(fmt.Errorf("read from %s:%d: %w", meta.Host, meta.Port, err))
		return
	}
	r.mu.Lock()
	r.failingSince, r.lastErr = time.Time{}, nil
	r.mu.Unlock()
}

func (r *reach) failed(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failingSince.IsZero() {
		r.failingSince = time.Now()
	}
	r.lastErr = err
}

// down returns an error when the destination has failed without a single
// successful answer for at least grace.
func (r *reach) down(grace time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failingSince.IsZero() || time.Since(r.failingSince) < grace {
		return nil
	}
	return fmt.Errorf("%w for %s: %w", errUnreachable, time.Since(r.failingSince).Round(time.Second), r.lastErr)
}
