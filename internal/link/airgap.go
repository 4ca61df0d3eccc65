package link

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// AirGapTopic is the compacted topic that holds where links across an air
// gap stand: at a site (in the source cluster) what each link exported and
// what the cloud acknowledged; in the cloud (in the destination cluster)
// which bundle each link imported last. One record per link and side,
// keyed "<site>:<link>/export" or "<site>:<link>/import".
const AirGapTopic = "__edgelink.airgap"

// ExportState is where a link's exports stand at its site.
type ExportState struct {
	// Acked is the last bundle the cloud acknowledged (a receipt brought
	// back): exports start where it ended.
	Acked *AckedBundle `json:"acked,omitempty"`
	// LastExport is the last bundle exported, acknowledged or not.
	LastExport *ExportInfo `json:"last_export,omitempty"`
}

// AckedBundle is the last acknowledged bundle: its sequence and hash (the
// next bundle follows it), and per partition ("topic/partition") the
// offset the cloud holds up to.
type AckedBundle struct {
	Sequence  int64            `json:"sequence"`
	ID        string           `json:"id"`
	Hash      string           `json:"hash"`
	Imported  time.Time        `json:"imported"`
	Acked     time.Time        `json:"acked"`
	Records   int64            `json:"records"`
	Positions map[string]int64 `json:"positions"`
}

// ExportInfo describes an exported bundle.
type ExportInfo struct {
	Sequence int64     `json:"sequence"`
	ID       string    `json:"id"`
	Hash     string    `json:"hash"`
	At       time.Time `json:"at"`
	Records  int64     `json:"records"`
	Bytes    int64     `json:"bytes"`
	Dir      string    `json:"dir"`
	// Complete is false when --max-bytes cut the export short.
	Complete bool `json:"complete"`
}

// ImportState is the last bundle a link imported in the cloud.
type ImportState struct {
	Sequence  int64            `json:"sequence"`
	ID        string           `json:"id"`
	Hash      string           `json:"hash"`
	At        time.Time        `json:"at"`
	Positions map[string]int64 `json:"positions"`
}

func partitionKey(k tp) string { return k.Topic + "/" + strconv.Itoa(int(k.Partition)) }

func parsePartitionKey(s string) (tp, bool) {
	i := strings.LastIndexByte(s, '/')
	if i < 0 {
		return tp{}, false
	}
	p, err := strconv.ParseInt(s[i+1:], 10, 32)
	if err != nil {
		return tp{}, false
	}
	return tp{s[:i], int32(p)}, true
}

// airGapKey is a link's key in AirGapTopic for one side.
func airGapKey(id Identity, side string) string { return id.String() + "/" + side }

// readAirGap reads the newest value of key in AirGapTopic into v; found is
// false when the topic or the key does not exist.
func readAirGap(ctx context.Context, opts []kgo.Opt, key string, v any) (found bool, err error) {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return false, fmt.Errorf("create client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, AirGapTopic)
	if err != nil {
		return false, fmt.Errorf("list offsets of %s: %w", AirGapTopic, err)
	}
	end, ok := ends.Lookup(AirGapTopic, 0)
	if !ok || end.Err != nil || end.Offset == 0 {
		return false, nil // no topic yet, or nothing in it
	}
	rd, err := kgo.NewClient(append(opts[:len(opts):len(opts)],
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{AirGapTopic: {0: kgo.NewOffset().AtStart()}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))...)
	if err != nil {
		return false, fmt.Errorf("create client: %w", err)
	}
	defer rd.Close()
	var last []byte
	for next := int64(0); next < end.Offset; {
		fs := rd.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return false, fmt.Errorf("read %s: %w", AirGapTopic, err)
		}
		if err := fs.Err(); err != nil {
			return false, fmt.Errorf("read %s: %w", AirGapTopic, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			next = r.Offset + 1
			if string(r.Key) == key {
				last = r.Value
			}
		})
	}
	if last == nil {
		return false, nil
	}
	if err := json.Unmarshal(last, v); err != nil {
		return false, fmt.Errorf("read %s of %s: %w", key, AirGapTopic, err)
	}
	return true, nil
}

// writeAirGap writes v as the newest value of key in AirGapTopic, creating
// the topic when it does not exist.
func writeAirGap(ctx context.Context, opts []kgo.Opt, key string, v any) error {
	cl, err := kgo.NewClient(append(opts[:len(opts):len(opts)], kgo.RequiredAcks(kgo.AllISRAcks()))...)
	if err != nil {
		return fmt.Errorf("create client: %w", err)
	}
	defer cl.Close()
	if _, _, err := ensureTopic(ctx, kadm.NewClient(cl), AirGapTopic, 1, map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}); err != nil {
		return err
	}
	val, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: AirGapTopic, Key: []byte(key), Value: val}).FirstErr(); err != nil {
		return fmt.Errorf("write %s to %s: %w", key, AirGapTopic, err)
	}
	return nil
}
