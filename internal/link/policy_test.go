package link

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/edgelink/edgelink/internal/bundle"
	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/provenance"
)

// TestPolicyTable: what the link does about each kind of error, under both
// record policies. Tearing a session down (retry, shown as disconnected)
// is for losing a cluster; a refused record or a smaller batch cap is
// handled within the session; what needs an operator stops the link.
func TestPolicyTable(t *testing.T) {
	refused := &refusedError{refused: []refusal{{tp{"alerts", 0}, 7, kerr.MessageTooLarge}}}
	for _, tc := range []struct {
		name      string
		err       error
		stop, ski action // under on_error: stop, and skip-and-record
	}{
		{"destination unreachable", fmt.Errorf("%w for 10s: dial refused", errUnreachable), retry, retry},
		{"broker error", fmt.Errorf("produce: %w", kerr.NotLeaderForPartition), retry, retry},
		{"authorization", kerr.TransactionalIDAuthorizationFailed, retry, retry},
		{"deadline", context.DeadlineExceeded, retry, retry},
		{"fenced", classify(kerr.ProducerFenced), stop, stop},
		{"fenced by epoch", classify(kerr.InvalidProducerEpoch), stop, stop},
		{"newer claim", fmt.Errorf("%w: instance x claimed the link", ErrFenced), stop, stop},
		{"source changed", fmt.Errorf("%w: ids differ", ErrSourceChanged), stop, stop},
		{"record refused", refused, stop, skip},
		{"record refused, wrapped", fmt.Errorf("commit: %w", refused), stop, skip},
		{"bundle changed since verified", fmt.Errorf("read bundle: %w", bundle.ErrTampered), stop, stop},
		{"bundle malformed", fmt.Errorf("read bundle: %w", bundle.ErrFormat), stop, stop},
		{"record crossed too many links", fmt.Errorf("alerts[0] offset 7: %w", provenance.ErrTooManyHops), stop, stop},
		{"batch cap", &batchCapError{limit: 65536, batch: 1 << 20, topic: "alerts"}, adjust, adjust},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.stop, decide(tc.err, config.OnErrorStop), "on_error: stop")
			require.Equal(t, tc.ski, decide(tc.err, config.OnErrorSkip), "on_error: skip-and-record")
		})
	}
}

// TestRefusedErrorNamesTheRecordAndTheFix keeps the message operators see.
func TestRefusedErrorNamesTheRecordAndTheFix(t *testing.T) {
	e := &refusedError{refused: []refusal{{tp{"alerts", 0}, 7, kerr.MessageTooLarge}}, onError: config.OnErrorStop}
	require.ErrorIs(t, e, ErrRefused)
	require.ErrorIs(t, e, kerr.MessageTooLarge)
	require.Contains(t, e.Error(), "alerts[0] offset 7")
	require.Contains(t, e.Error(), "set on_error: skip-and-record")
	e.onError = config.OnErrorSkip
	require.False(t, errors.Is(e, ErrRefused))
}
