package demo_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/edgelink/edgelink/internal/demo"
	"github.com/edgelink/edgelink/internal/fleet"
	"github.com/edgelink/edgelink/internal/observe"
	"github.com/edgelink/edgelink/internal/testbed"
)

// TestDemoFleet: the demo's fleet page lists the demo's own site, live,
// among the simulated sites (some lagging, one silent, one on an older
// version); the status page links to it and shows the site reporting;
// a cut link makes the demo's site fall silent in the fleet, and it
// reports again once the link is restored.
func TestDemoFleet(t *testing.T) {
	d := startDemo(t, t.TempDir(), 50)
	var f fleet.Fleet
	testbed.Eventually(t, 40*time.Second, func() error {
		require.NoError(t, json.Unmarshal([]byte(get(t, d.FleetURL()+"api/v1/fleet")), &f))
		if len(f.Sites) != demo.SimulatedSites+1 {
			return fmt.Errorf("%d sites", len(f.Sites))
		}
		for _, s := range f.Sites {
			if s.Site == demo.Site && s.State == "live" && !s.Stale {
				if f.Summary.Stale != 1 {
					return fmt.Errorf("%d silent sites", f.Summary.Stale)
				}
				return nil
			}
		}
		return fmt.Errorf("the demo site is not live in the fleet yet")
	})
	require.Positive(t, f.Summary.ByState["catching-up"], "some simulated sites lag")
	require.Len(t, f.Summary.Versions, 2, "one simulated site runs an older version: %v", f.Summary.Versions)
	require.NotEmpty(t, f.Summary.ClosestToLoss)

	var st observe.StatusResponse
	require.NoError(t, json.Unmarshal([]byte(get(t, d.URL()+"api/v1/status")), &st))
	require.Equal(t, d.FleetURL(), st.FleetURL, "the status page links to the fleet page")
	require.NotNil(t, st.Fleet, "the status shows the fleet connection")

	// The demo's site reports through the simulated WAN.
	d.Cut()
	testbed.Eventually(t, 30*time.Second, func() error {
		s, ok := siteOf(t, d)
		if !ok || !s.Stale {
			return fmt.Errorf("the demo site is not silent yet")
		}
		return nil
	})
	d.Restore()
	testbed.Eventually(t, 30*time.Second, func() error {
		s, ok := siteOf(t, d)
		if !ok || s.Stale {
			return fmt.Errorf("the demo site is still silent")
		}
		return nil
	})
}

func siteOf(t *testing.T, d *running) (fleet.SiteDetail, bool) {
	var s fleet.SiteDetail
	if err := json.Unmarshal([]byte(get(t, d.FleetURL()+"api/v1/fleet/sites/"+demo.Site)), &s); err != nil {
		return s, false
	}
	return s, true
}
