package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/edgelink/edgelink/internal/fleet"
)

// TestPrintUplink: edgelink status shows the fleet connection and a managed
// site's configuration state.
func TestPrintUplink(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	at := now.Add(-3 * time.Second)
	var b strings.Builder
	printUplink(&b, &fleet.UplinkState{
		Cluster: "cloud", Managed: true, LastPublished: &at, Published: 7,
		Config: fleet.ConfigState{
			Managed: true, AppliedRevision: 4, GoodRevision: 4, DesiredRevision: 5,
			RefusedRevision: 5, RefusedReason: "untrusted key: key ed25519:0011: not a trusted key", AppliedBy: "ops (ed25519:aa)",
		},
	}, now)
	require.Equal(t, `
fleet: reports to cloud, last 3.0s ago
configuration: managed, revision 4 applied (last good 4, newest 5), signed by ops (ed25519:aa)
revision 5 refused: untrusted key: key ed25519:0011: not a trusted key
`, b.String())
	b.Reset()
	printUplink(&b, &fleet.UplinkState{Cluster: "cloud", Failed: 3, LastError: "publish report: no acknowledgement within 5s"}, now)
	require.Equal(t, "\nfleet: reports to cloud: NOT REPORTING (3 failed attempts): publish report: no acknowledgement within 5s\n", b.String())
}
