package bundle_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/edgelink/edgelink/internal/bundle"
)

// TestEndRange: an export cut short ends a partition's range after its
// last record, and the bundle says so; a range cannot end before a record
// added, after its declared end, or once the bundle is closed.
func TestEndRange(t *testing.T) {
	signer, ring := keys(t, "site")
	dir := filepath.Join(t.TempDir(), "b")
	m := manifest(0)
	m.Ranges = []bundle.Range{{Topic: "sensors", Partition: 2, From: 100, To: 200}}
	w, err := bundle.Create(dir, m, bundle.WriterOptions{Signer: signer})
	require.NoError(t, err)
	defer w.Abort()
	require.NoError(t, w.Add(&bundle.Record{Topic: "sensors", Partition: 2, Offset: 150, Value: []byte("v")}))
	require.ErrorContains(t, w.EndRange("sensors", 2, 150), "want an offset from 151 to 200")
	require.ErrorContains(t, w.EndRange("sensors", 2, 201), "want an offset from 151 to 200")
	require.ErrorContains(t, w.EndRange("sensors", 3, 160), "no range")
	require.NoError(t, w.EndRange("sensors", 2, 160))
	got, err := w.Close()
	require.NoError(t, err)
	require.Equal(t, int64(160), got.Ranges[0].To)
	require.Error(t, w.EndRange("sensors", 2, 170))
	b, err := bundle.Open(dir, bundle.ReaderOptions{Trusted: ring})
	require.NoError(t, err)
	require.NoError(t, b.Verify(t.Context()))
	require.Equal(t, int64(160), b.Manifest().Ranges[0].To)
}
