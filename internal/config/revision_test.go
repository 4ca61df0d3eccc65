package config_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/edgelink/edgelink/internal/config"
)

const localFile = `site: plant-a
site_labels: {region: eu}
clusters:
  edge: {bootstrap: ["127.0.0.1:9092"]}
  cloud: {bootstrap: ["127.0.0.1:9093"]}
fleet: {cluster: cloud, managed: true, trusted_keys: [ops.pub]}
http: {listen: "127.0.0.1:0"}
`

func TestParseRevisionKeepsLocalKeys(t *testing.T) {
	doc := `clusters:
  edge: {bootstrap: ["${EDGE}"]}
  cloud: {bootstrap: ["127.0.0.1:9093"]}
links:
  - {name: up, from: edge, to: cloud, topics: {include: ["s.*"]}, rename: "{site}.{topic}"}
`
	env := func(k string) (string, bool) {
		if k == "EDGE" {
			return "10.0.0.1:9092", true
		}
		return "", false
	}
	cfg, err := config.ParseRevision("revision 3", []byte(doc), "edgelink.yaml", []byte(localFile), env)
	require.NoError(t, err)
	require.Equal(t, "plant-a", cfg.Site)
	require.Equal(t, "10.0.0.1:9092", cfg.Clusters["edge"].Bootstrap[0], "${VAR} resolves at the site")
	require.NotNil(t, cfg.Fleet)
	require.True(t, cfg.Fleet.Managed)
	require.Equal(t, []string{"ops.pub"}, cfg.Fleet.TrustedKeys)
	require.Equal(t, "127.0.0.1:0", cfg.HTTP.Listen)
	require.Equal(t, "plant-a.s1", cfg.Links[0].DestinationTopic(cfg.Site, "s1"))
	require.Equal(t, map[string]string{"region": "eu"}, cfg.SiteLabels)
}

func TestParseRevisionRefusesLocalKeys(t *testing.T) {
	for name, doc := range map[string]string{
		"fleet":      "clusters: {cloud: {bootstrap: [\"127.0.0.1:9093\"]}}\nfleet: {cluster: cloud}\n",
		"site":       "site: plant-b\nclusters: {cloud: {bootstrap: [\"127.0.0.1:9093\"]}}\n",
		"http":       "clusters: {cloud: {bootstrap: [\"127.0.0.1:9093\"]}}\nhttp: {listen: \":9000\"}\n",
		"invalid":    "clusters: {cloud: {bootstrap: [\"127.0.0.1\"]}}\n",
		"unset var":  "clusters: {cloud: {bootstrap: [\"${NOPE}\"]}}\n",
		"not a map":  "- a\n",
		"fleet gone": "clusters: {edge: {bootstrap: [\"127.0.0.1:9092\"]}}\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := config.ParseRevision("revision 4", []byte(doc), "edgelink.yaml", []byte(localFile), nil)
			require.Error(t, err)
			require.True(t, config.IsInvalid(err))
			t.Log(err)
		})
	}
	_, err := config.ParseRevision("revision 5", []byte("site: plant-a\nclusters: {cloud: {bootstrap: [\"127.0.0.1:9093\"]}}\n"), "edgelink.yaml", []byte(localFile), nil)
	require.NoError(t, err, "the site's own name may stay in the document")
}

func TestTransforms(t *testing.T) {
	cfg, err := config.Load("testdata/transforms.good.yaml")
	require.NoError(t, err)
	tr := cfg.Links[0].Transforms
	require.Len(t, tr, 3)
	require.Equal(t, `json.temp > 80.0 && topic.startsWith("sensors.")`, tr[0].Filter)
	require.Nil(t, tr[0].Project)
	require.Equal(t, &config.Projection{Drop: []string{"debug", "reading.raw"}}, tr[1].Project)
	require.Equal(t, &config.Aggregate{
		Window: time.Minute, Grace: 10 * time.Second, Key: "json.machine",
		Values:    map[string]string{"temp": "json.temp", "rpm": "json.rpm"},
		Functions: []string{"min", "max", "mean", "count"},
		Outputs:   config.Outputs{To: "{site}.{topic}.1m", Late: "{site}.{topic}.late"},
	}, tr[2].Aggregate)
	require.Equal(t, []string{"plant-a.sensors.x.1m", "plant-a.sensors.x.late"}, cfg.Links[0].DerivedTopics("plant-a", "sensors.x"))
	require.True(t, tr[2].Stateful())
	require.Equal(t, 128<<20, cfg.Links[0].MaxState)
	out, err := cfg.YAML()
	require.NoError(t, err)
	again, err := config.Parse("again.yaml", out)
	require.NoError(t, err)
	require.Equal(t, tr, again.Links[0].Transforms)
	require.Equal(t, cfg.Links[0].MaxState, again.Links[0].MaxState)
}
