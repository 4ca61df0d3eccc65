package link

import (
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/edgelink/edgelink/internal/config"
)

// TestTransactionalIDMatchesTheEngine keeps the id that `edgelink check`
// verifies equal to the one the engine uses.
func TestTransactionalIDMatchesTheEngine(t *testing.T) {
	cfg, err := config.Parse("t.yaml", []byte(`clusters: {a: {bootstrap: ["h:1"]}, b: {bootstrap: ["h:2"]}}
links: [{name: up-1, from: a, to: b, topics: {include: [x]}}]
`))
	require.NoError(t, err)
	l := New(cfg, cfg.Links[0], Options{}, slog.New(slog.DiscardHandler))
	require.Equal(t, l.transactionalID(), TransactionalID("up-1"))
}
