package link

import (
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/edgelink/edgelink/internal/config"
)

// TestDrainRateCountsSourceRecords: a commit of a link whose transforms
// kept 10 of 1,000 source records adds 1,000 to its drain rate, which the
// backlog (in source records) is divided by: a link keeping up is live.
func TestDrainRateCountsSourceRecords(t *testing.T) {
	cfg, err := config.Parse("t.yaml", []byte(`clusters:
  a: {bootstrap: ["127.0.0.1:1"]}
  b: {bootstrap: ["127.0.0.1:2"]}
links:
  - {name: up, from: a, to: b, topics: {include: [".*"]}, transforms: [{filter: "json.temp > 90.0"}]}
`))
	require.NoError(t, err)
	l := New(cfg, cfg.Links[0], Options{}, slog.New(slog.DiscardHandler))
	s := &session{l: l, transforming: true, rateAt: time.Now().Add(-time.Second)}
	sl := &slot{
		pos:      newPositions(slotStore{}, "", nil, func(tp, int64, int64) {}),
		txTopics: map[string]counts{"sensors": {10, 1000}},
		txIn:     map[string]counts{"sensors": {1000, 100_000}},
		txRecs:   10, txBytes: 1000, txSize: 1 << 20,
	}
	s.committed(sl)
	require.InDelta(t, 100, s.rate, 15, "a tenth of 1,000 source records a second (the weight of one second)")
	st := l.Status()
	require.EqualValues(t, 1000, st.RecordsIn)
	require.EqualValues(t, 10, st.Records)
}
