package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/edgelink/edgelink/internal/faultnet"
	"github.com/edgelink/edgelink/internal/testbed"
	"github.com/edgelink/edgelink/internal/verify"
)

// freeUDPPort returns a loopback UDP address nothing listens on.
func freeUDPPort(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := c.LocalAddr().String()
	require.NoError(t, c.Close())
	return addr
}

// diodeStatus is the part of a receiver's /api/v1/status these tests read.
type diodeStatus struct {
	Links []struct {
		State string `json:"state"`
		Diode *struct {
			Silent bool  `json:"silent"`
			Forged int64 `json:"forged"`
		} `json:"diode"`
	} `json:"links"`
}

// TestRealKafkaDiode: two links cross a one-way UDP link between two real
// Kafka clusters. The first, with parity and repeats ("fec 16+4, repeat 3s
// 15s"), goes through a relay that loses 5% of the datagrams, reorders 1%,
// injects garbage and bit-flipped copies, and loses 30% for 10 s, while
// its receiver is killed with SIGKILL and started again: every record
// arrives exactly once. The second, without redundancy, loses everything
// for a second: its receiver reports the exact ranges it never got
// (topic, partition, offsets), within seconds, and the checker finds
// exactly those missing and nothing else. Once the sender stops, the
// receiver says it is silent.
func TestRealKafkaDiode(t *testing.T) {
	edge := testbed.StartKafka(t, testbed.Options{Name: "edge"})
	cloud := testbed.StartKafka(t, testbed.Options{Name: "cloud"})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()
	createTopics(t, edge, 3, nil, "ot.sensors")
	createTopics(t, edge, 1, nil, "bare.events")
	keyBase := filepath.Join(dir, "diode")
	code, out := edgelinkCmd(t, ctx, "keygen", "--diode", "--out", keyBase)
	require.Zero(t, code, out)

	otAddr, bareAddr := freeUDPPort(t), freeUDPPort(t)
	otRelay, err := faultnet.ListenUDP(otAddr, 1)
	require.NoError(t, err)
	defer func() { _ = otRelay.Close() }()
	bareRelay, err := faultnet.ListenUDP(bareAddr, 2)
	require.NoError(t, err)
	defer func() { _ = bareRelay.Close() }()
	otRelay.SetFaults(faultnet.UDPFaults{Loss: 0.05, Reorder: 0.01, Garbage: 0.01, Flip: 0.01})

	links := func(otTo, bareTo string) string {
		return fmt.Sprintf(`  - name: ot
    from: edge
    to: cloud
    topics: {include: ['ot\..*']}
    commit_interval: 200ms
    diode: {send_to: %q, key_file: %s, rate: 8MB/s, redundancy: "fec 16+4, repeat 3s 15s, buffer 128MiB"}
  - name: bare
    from: edge
    to: cloud
    topics: {include: ['bare\..*']}
    commit_interval: 200ms
    diode: {send_to: %q, key_file: %s, redundancy: none}
`, otTo, keyBase+".key", bareTo, keyBase+".key")
	}
	siteCfg := writeConfig(t, edge, cloud, links(otRelay.Addr(), bareRelay.Addr()))
	cloudCfg := writeConfig(t, edge, cloud, links("", ""))
	receive := func(name, linkName, addr string) *agent {
		return startProcess(t, name, nil, "diode", "receive", "-c", cloudCfg, "--link", linkName, "--listen", addr)
	}
	otRecv := receive("receiver-ot", "ot", otAddr)
	bareRecv := receive("receiver-bare", "bare", bareAddr)
	sender := startAgent(t, "sender", siteCfg)

	// Load for 45 s, about 1 MB/s: plain records (keys, tombstones,
	// headers, values up to 900 KB) and transactions of which every fourth
	// aborts.
	var l load
	var bare atomic.Int64
	var g errgroup.Group
	producing, stop := context.WithTimeout(ctx, 45*time.Second)
	defer stop()
	g.Go(func() error {
		for i := uint64(0); producing.Err() == nil; i++ {
			if err := l.produce(producing, t, edge, []string{"ot.sensors"}, 100, 100+i); err != nil && producing.Err() == nil {
				return err
			}
			time.Sleep(200 * time.Millisecond)
		}
		return nil
	})
	g.Go(func() error {
		for i := uint64(0); producing.Err() == nil; i++ {
			if err := l.transact(producing, edge, "ot.sensors", 4, 20, 200+i); err != nil && producing.Err() == nil {
				return err
			}
			time.Sleep(time.Second)
		}
		return nil
	})
	g.Go(func() error {
		cl, err := edge.Client(kgo.DefaultProduceTopic("bare.events"))
		if err != nil {
			return err
		}
		defer cl.Close()
		for i := 0; producing.Err() == nil; i++ {
			if err := cl.ProduceSync(producing, &kgo.Record{Key: fmt.Appendf(nil, "k%d", i%10), Value: fmt.Appendf(nil, "event %d", i)}).FirstErr(); err != nil {
				if producing.Err() != nil {
					return nil
				}
				return err
			}
			bare.Add(1)
			time.Sleep(2 * time.Millisecond)
		}
		return nil
	})

	// A burst of loss from 5 s to 15 s, healed by the 15 s repeats; a
	// blackout of bare at 6 s; the receiver of ot killed at 32 s and back
	// at 35 s, healed by the repeats too.
	time.Sleep(5 * time.Second)
	otRelay.Burst(0, 10*time.Second, 0.3)
	bareRelay.Burst(time.Second, time.Second, 1) // nothing gets through for a second
	blackout := time.Now().Add(time.Second)
	time.Sleep(27 * time.Second)
	otRecv.kill()
	time.Sleep(3 * time.Second)
	otRecv = receive("receiver-ot-2", "ot", otAddr)
	require.NoError(t, g.Wait())
	t.Logf("produced %d records (%d in committed transactions, %d aborted) to ot.sensors, %d to bare.events",
		l.records.Load(), l.committed.Load(), l.aborted.Load(), bare.Load())

	// Every record of ot, exactly once, once the repeats came.
	rep := checkUntilClean(t, edge, cloud, []verify.Pair{{Source: "ot.sensors", Destination: "ot.sensors"}}, 60*time.Second, nil)
	requireClean(t, rep)
	txt, err := statusText(ctx, otRecv)
	require.NoError(t, err)
	var st diodeStatus
	require.NoError(t, json.Unmarshal([]byte(txt), &st))
	require.Len(t, st.Links, 1)
	require.NotNil(t, st.Links[0].Diode)
	relay := otRelay.Stats()
	t.Logf("relay ot: %+v; receiver: %+v", relay, *st.Links[0].Diode)
	require.Positive(t, relay.Dropped)
	require.Positive(t, st.Links[0].Diode.Forged, "garbage and flipped datagrams were dropped as forged")

	// bare: the blackout's records are reported exactly, within seconds,
	// and are exactly what is missing.
	var open []map[string]any
	testbed.Eventually(t, 30*time.Second, func() error {
		if open = bareRecv.logsWith("missing: waiting up to"); len(open) == 0 {
			return fmt.Errorf("no gap reported yet")
		}
		return nil
	})
	first, err := time.Parse(time.RFC3339Nano, open[0]["time"].(string))
	require.NoError(t, err)
	require.Less(t, first.Sub(blackout), 5*time.Second, "the gap was reported within seconds of the blackout")
	var lost []map[string]any
	testbed.Eventually(t, 30*time.Second, func() error {
		if lost = bareRecv.logsWith("were lost in the diode"); len(lost) == 0 {
			return fmt.Errorf("no gap given up yet")
		}
		return nil
	})
	expected := map[string]map[int32][]verify.Range{"bare.events": {}}
	var gapRecords int64
	for _, m := range lost {
		require.Equal(t, "bare.events", m["topic"])
		from, to := int64(m["from"].(float64)), int64(m["to"].(float64))
		p := int32(m["partition"].(float64))
		expected["bare.events"][p] = append(expected["bare.events"][p], verify.Range{From: from, To: to + 1})
		gapRecords += to + 1 - from
	}
	t.Logf("bare: gaps reported %v", expected)
	src, err := edge.Client()
	require.NoError(t, err)
	defer src.Close()
	dst, err := cloud.Client()
	require.NoError(t, err)
	defer dst.Close()
	testbed.Eventually(t, 30*time.Second, func() error {
		rep, err := verify.Check(ctx, verify.Options{Source: src, Destination: dst, Topics: []verify.Pair{{Source: "bare.events", Destination: "bare.events"}}, ExpectedLost: expected})
		if err != nil {
			return err
		}
		if !rep.OK() || rep.ExpectedLost != gapRecords {
			return fmt.Errorf("checker: %s", rep)
		}
		t.Logf("bare checker:\n%s", rep)
		return nil
	})

	// The sender stops: the receiver says it is silent.
	stopAgents(t, sender)
	testbed.Eventually(t, 20*time.Second, func() error {
		txt, err := statusText(ctx, otRecv)
		if err != nil {
			return err
		}
		var st diodeStatus
		if err := json.Unmarshal([]byte(txt), &st); err != nil {
			return err
		}
		if len(st.Links) != 1 || st.Links[0].Diode == nil || !st.Links[0].Diode.Silent {
			return fmt.Errorf("receiver status: %s", strings.TrimSpace(txt)[:min(len(txt), 300)])
		}
		return nil
	})
	stopAgents(t, otRecv, bareRecv)
}
