package e2e_test

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/edgelink/edgelink/internal/testbed"
)

// TestRealKafkaFilterAndProjection: a link keeps one reading in a hundred
// (a CEL filter) and projects it to three fields, into real Kafka, while
// its agent is killed with SIGKILL three times; a record that is not JSON
// is recorded as skipped. edgelink verify, which applies the link's
// transforms to the source, then finds every kept record exactly once,
// projected, and nothing else.
func TestRealKafkaFilterAndProjection(t *testing.T) {
	cloud := testbed.StartKafka(t, testbed.Options{Name: "cloud"})
	linkYAML := fmt.Sprintf(`%s    on_error: skip-and-record
    transforms:
      - filter: json.temp >= 99.0
      - project: {keep: [machine, temp, seq]}
`, fleetLinkYAML(100*time.Millisecond))
	s := newSite(t, "plant-f", cloud, []string{"sensors.temp"}, 3, linkYAML)

	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	producing, stopProducing := context.WithCancel(ctx)
	defer stopProducing()
	var produced, notJSON int
	var g errgroup.Group
	g.Go(func() error {
		cl, err := kgo.NewClient(kgo.SeedBrokers(s.edge.ListenAddrs()...), kgo.ProducerLinger(2*time.Millisecond))
		if err != nil {
			return err
		}
		defer cl.Close()
		for i := 0; producing.Err() == nil; i += 100 {
			recs := make([]*kgo.Record, 0, 101)
			for j := range 100 {
				n := i + j
				recs = append(recs, &kgo.Record{
					Topic: "sensors.temp", Key: fmt.Appendf(nil, "m%d", n%37),
					Value: fmt.Appendf(nil, `{"machine": "m%d", "temp": %d, "seq": %d, "debug": "%0200d"}`, n%37, n%100, n, n),
				})
			}
			if i%5000 == 0 {
				recs = append(recs, &kgo.Record{Topic: "sensors.temp", Value: []byte("not json")})
				notJSON++
			}
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				return fmt.Errorf("produce: %w", err)
			}
			produced += len(recs)
			time.Sleep(20 * time.Millisecond)
		}
		return nil
	})

	s.start(t)
	s.waitLive(t, 30*time.Second)
	for range 3 {
		time.Sleep(2 * time.Second)
		s.current().kill()
		s.start(t)
		s.waitLive(t, 30*time.Second)
	}
	time.Sleep(time.Second)
	stopProducing()
	require.NoError(t, g.Wait())

	counts := regexp.MustCompile(`: (\d+) source records, (\d+) destination records`)
	lost := regexp.MustCompile(`lost (\d+), duplicated (\d+), reordered (\d+), corrupted (\d+), phantom (\d+), foreign (\d+)`)
	filtered := regexp.MustCompile(`filtered by the link's transforms (\d+) \((\d+) of them`)
	var out string
	testbed.Eventually(t, 60*time.Second, func() error {
		b, err := exec.CommandContext(ctx, binary, "verify", "-c", s.cfg, "--link", fleetLink).CombinedOutput()
		out = string(b)
		if err != nil {
			return fmt.Errorf("verify: %w\n%s", err, out)
		}
		return nil
	})
	t.Logf("%d records produced; edgelink verify:\n%s", produced, out)
	m := lost.FindStringSubmatch(out)
	require.NotNil(t, m, out)
	require.Equal(t, []string{"0", "0", "0", "0", "0", "0"}, m[1:], out)
	f := filtered.FindStringSubmatch(out)
	require.NotNil(t, f, out)
	// Each batch of a hundred readings holds one at 99 degrees.
	kept := (produced - notJSON) / 100
	require.Equal(t, strconv.Itoa(produced-kept), f[1], "filtered")
	require.Equal(t, strconv.Itoa(notJSON), f[2], "not JSON")
	c := counts.FindStringSubmatch(out)
	require.NotNil(t, c, out)
	require.Equal(t, []string{strconv.Itoa(kept), strconv.Itoa(kept)}, c[1:], "source records kept and destination records")
	stopAgents(t, s.current())
	s.requireNoFalseAlarm(t)
}
