package link

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/kafka"
)

// TestTransactionalIDMatchesTheEngine keeps the id that `edgelink check`
// verifies equal to the one the engine uses.
func TestTransactionalIDMatchesTheEngine(t *testing.T) {
	cfg, err := config.Parse("t.yaml", []byte(`clusters: {a: {bootstrap: ["h:1"]}, b: {bootstrap: ["h:2"]}}
links: [{name: up-1, from: a, to: b, topics: {include: [x]}}]
`))
	require.NoError(t, err)
	l := New(cfg, cfg.Links[0], Options{}, slog.New(slog.DiscardHandler))
	require.Equal(t, "edgelink-up-1-0", l.Identity().TransactionalID(0), "without a site, slot 0 has the id of earlier releases")
	require.Equal(t, "edgelink-plant-1:up-1-5", Identity{"plant-1", "up-1"}.TransactionalID(5))
	_, dst := Needs("plant-1", cfg.Links[0], []string{"x"})
	need := dst[len(dst)-1]
	require.Equal(t, "edgelink-plant-1:up-1-", need.Name)
	require.True(t, need.Prefixed)
	require.Len(t, need.Probe, config.DefaultSlots)
	require.Equal(t, "edgelink-plant-1:up-1-5", need.Probe[5])
	src, _ := Needs("plant-1", cfg.Links[0], []string{"x"})
	group := src[len(src)-1]
	require.Equal(t, kmsg.ACLResourceTypeGroup, group.Resource)
	require.Equal(t, "edgelink-plant-1:up-1", group.Name, "the group the agents share the link in")
}

// TestSlotsSpreadATopicEvenly: a topic's partitions take consecutive
// slots, so that 24 partitions over 6 slots give each slot 4.
func TestSlotsSpreadATopicEvenly(t *testing.T) {
	for _, n := range []int{1, 2, 3, 6, 12} {
		count := make(map[int]int)
		for p := range int32(24) {
			count[slotOf(tp{"sensors.temp", p}, n)]++
		}
		require.Len(t, count, n)
		for s, c := range count {
			require.Equal(t, 24/n, c, "slot %d of %d", s, n)
		}
	}
}

func TestMirrorTopicRefusesIllegalAndOwnNames(t *testing.T) {
	cfg, err := config.Parse("t.yaml", []byte(`site: s
clusters: {a: {bootstrap: ["h:1"]}, b: {bootstrap: ["h:2"]}}
links:
  - {name: up, from: a, to: b, topics: {include: [".*"]}, rename: "{site}.{topic}"}
  - {name: raw, from: a, to: b, topics: {include: [".*"]}, rename: "__edgelink.{topic}"}
`))
	require.NoError(t, err)
	up, raw := cfg.Links[0], cfg.Links[1]
	for _, tc := range []struct {
		lc    *config.Link
		topic string
		want  string // "" when legal
	}{
		{up, "alerts", ""},
		{up, strings.Repeat("x", 247), ""}, // 249 characters
		{up, strings.Repeat("x", 248), "is 250 characters long, Kafka allows 249"},
		{raw, "checkpoints", `"__edgelink.checkpoints" is edgelink's own`},
		{raw, "skipped", `"__edgelink.skipped" is edgelink's own`},
		{raw, "alerts", ""},
	} {
		_, err := MirrorTopic(cfg.Site, tc.lc, tc.topic)
		if tc.want == "" {
			require.NoError(t, err, tc.topic)
			continue
		}
		require.ErrorContains(t, err, tc.want, tc.topic)
	}
}

// TestAirGappedLinkNeedsItsPositionsTopic: a link across an air gap reads
// and writes where it stands in AirGapTopic, at the site and in the cloud.
func TestAirGappedLinkNeedsItsPositionsTopic(t *testing.T) {
	cfg, err := config.Parse("t.yaml", []byte(`clusters: {a: {bootstrap: ["h:1"]}, b: {bootstrap: ["h:2"]}}
links: [{name: up-1, from: a, to: b, topics: {include: [x]}, bundle: {signing_key: s.key}}]
`))
	require.NoError(t, err)
	src, dst := Needs("plant-1", cfg.Links[0], []string{"x"})
	for _, side := range [][]kafka.Need{src, dst} {
		ops := make(map[kmsg.ACLOperation]bool)
		for _, n := range side {
			if n.Name == AirGapTopic {
				ops[n.Op] = true
			}
		}
		require.Equal(t, map[kmsg.ACLOperation]bool{
			kmsg.ACLOperationDescribe: true, kmsg.ACLOperationCreate: true, kmsg.ACLOperationRead: true, kmsg.ACLOperationWrite: true,
		}, ops)
	}
}

// TestGroupNeeds: a link that syncs groups needs Describe on them at the
// source and Read at the destination, named as ACLs can: a pattern's
// literal prefix, a plain id, or the wildcard.
func TestGroupNeeds(t *testing.T) {
	cfg, err := config.Parse("t.yaml", []byte(`site: s
clusters: {a: {bootstrap: ["h:1"]}, b: {bootstrap: ["h:2"]}}
links:
  - {name: up, from: a, to: b, topics: {include: [x]}, groups: {include: ["app-.*", "billing", ".*-audit", "app-(1|2)"], exclude: ["app-test"]}}
`))
	require.NoError(t, err)
	src, dst := Needs("s", cfg.Links[0], []string{"x"})
	groups := func(needs []kafka.Need, op kmsg.ACLOperation) []string {
		var out []string
		for _, n := range needs {
			if n.Resource == kmsg.ACLResourceTypeGroup && n.Op == op {
				out = append(out, fmt.Sprintf("%s prefixed=%v", n.Name, n.Prefixed))
			}
		}
		return out
	}
	want := []string{"app- prefixed=true", "billing prefixed=false", "* prefixed=false"}
	require.Equal(t, want, groups(src, kmsg.ACLOperationDescribe))
	require.Equal(t, want, groups(dst, kmsg.ACLOperationRead))
}
