package link

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// SkippedTopic is the destination topic that records every source record a
// link with on_error: skip-and-record did not replicate, and why.
const SkippedTopic = "__edgelink.skipped"

// tp names a source topic partition.
type tp struct {
	Topic     string
	Partition int32
}

func (t tp) String() string { return t.Topic + "[" + strconv.Itoa(int(t.Partition)) + "]" }

// checkpoint is the value of a checkpoint record: the next source offset to
// replicate. It is written in the same transaction as the records before it.
type checkpoint struct {
	// Next is the next source offset to read.
	Next int64 `json:"next"`
	// Source is the source cluster's id, to notice a source that was
	// replaced by another cluster under the same name.
	Source string `json:"source,omitempty"`
	// TopicID is the source topic's id, to notice a topic that was
	// deleted and created again under the same name (its offsets restart).
	TopicID string `json:"topic_id,omitempty"`
}

// checkpointKey is "<link>/<source topic>/<partition>"; neither link names
// nor topic names may contain "/".
func checkpointKey(link string, t tp) []byte {
	return []byte(link + "/" + t.Topic + "/" + strconv.Itoa(int(t.Partition)))
}

// claim is the value of a link's ownership record, "<link>/owner", which
// every exactly-once session writes (outside any transaction) before its
// transactional producer fences earlier instances, so that a fenced
// instance always finds the newer claim. An instance whose session fails reads it
// back before reconnecting: if another instance claimed the link since, it
// stops instead of fencing the newer one in turn. (Since transactions v2,
// a producer fenced mid-transaction can see INVALID_TXN_STATE rather than
// PRODUCER_FENCED, so the error alone cannot tell.)
type claim struct {
	Instance string    `json:"instance"`
	Host     string    `json:"host,omitempty"`
	PID      int       `json:"pid,omitempty"`
	Since    time.Time `json:"since"`
}

func (c claim) String() string {
	return fmt.Sprintf("instance %s (host %s, pid %d) since %s", c.Instance, c.Host, c.PID, c.Since.Format(time.RFC3339))
}

// newClaim identifies this process.
func newClaim() claim {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	host, _ := os.Hostname()
	return claim{Instance: hex.EncodeToString(b), Host: host, PID: os.Getpid()}
}

func ownerKey(link string) []byte { return []byte(link + "/owner") }

func claimRecord(topic, link string, c claim) *kgo.Record {
	v, _ := json.Marshal(c) // a struct of plain fields cannot fail to marshal
	return &kgo.Record{Topic: topic, Partition: 0, Key: ownerKey(link), Value: v}
}

func parseCheckpointKey(key []byte) (link string, t tp, ok bool) {
	parts := strings.Split(string(key), "/")
	if len(parts) != 3 {
		return "", tp{}, false
	}
	p, err := strconv.ParseInt(parts[2], 10, 32)
	if err != nil {
		return "", tp{}, false
	}
	return parts[0], tp{parts[1], int32(p)}, true
}

func checkpointRecord(topic, link string, t tp, c checkpoint) *kgo.Record {
	v, _ := json.Marshal(c) // a struct of plain fields cannot fail to marshal
	return &kgo.Record{Topic: topic, Partition: 0, Key: checkpointKey(link, t), Value: v}
}

// ensureCheckpointTopic creates the compacted checkpoint topic when missing.
func ensureCheckpointTopic(ctx context.Context, adm *kadm.Client, topic string) error {
	cfg := map[string]*string{
		"cleanup.policy":            kadm.StringPtr("compact"),
		"min.cleanable.dirty.ratio": kadm.StringPtr("0.1"),
		"segment.ms":                kadm.StringPtr(strconv.Itoa(int(time.Hour / time.Millisecond))),
	}
	return ensureTopic(ctx, adm, topic, cfg)
}

// ensureTopic creates a one-partition internal topic when it is missing.
func ensureTopic(ctx context.Context, adm *kadm.Client, topic string, cfg map[string]*string) error {
	// Asking first means Create is only needed while the topic is absent.
	tds, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return fmt.Errorf("describe internal topic %s: %w", topic, err)
	}
	if td, ok := tds[topic]; ok && td.Err == nil {
		return nil
	}
	resp, err := adm.CreateTopic(ctx, 1, -1, cfg, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create internal topic %s: %w", topic, err)
	}
	return nil
}

// saved is what the checkpoint topic holds for one link.
type saved struct {
	checkpoints map[tp]checkpoint
	owner       claim
}

// loadCheckpoints reads the checkpoint topic to its last stable offset and
// returns the latest checkpoint of every partition of link, and the link's
// latest ownership claim. The caller must
// have fenced earlier instances first (initialised its transactional
// producer) so that no transaction of the link is still open.
func loadCheckpoints(ctx context.Context, opts []kgo.Opt, adm *kadm.Client, topic, link string) (saved, error) {
	ends, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		return saved{}, fmt.Errorf("list end offsets of %s: %w", topic, err)
	}
	end, ok := ends.Lookup(topic, 0)
	switch {
	case !ok:
		return saved{}, fmt.Errorf("list end offsets of %s: partition 0 not known yet", topic)
	case end.Err != nil:
		return saved{}, fmt.Errorf("list end offsets of %s: %w", topic, end.Err)
	}
	out := make(map[tp]checkpoint)
	var owner claim
	if end.Offset == 0 {
		return saved{checkpoints: out}, nil
	}
	cl, err := kgo.NewClient(append(opts,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
	)...)
	if err != nil {
		return saved{}, fmt.Errorf("create checkpoint reader: %w", err)
	}
	defer cl.Close()
	prefix := link + "/"
	var pos int64 = -1
	// The records just below the last stable offset can be aborted records
	// whose abort marker lies above it (when another transaction is still
	// open); read_committed never returns them, so after a few idle polls
	// everything below the end has been seen.
	idle := 0
	for pos+1 < end.Offset && idle < 3 {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		if err := ctx.Err(); err != nil {
			return saved{}, fmt.Errorf("read checkpoints from %s (at %d of %d): %w", topic, pos+1, end.Offset, err)
		}
		if err := fs.Err0(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return saved{}, fmt.Errorf("read checkpoints from %s: %w", topic, err)
		}
		if fs.NumRecords() == 0 {
			idle++
			continue
		}
		idle = 0
		fs.EachRecord(func(r *kgo.Record) {
			pos = r.Offset
			if r.Attrs.IsControl() || !strings.HasPrefix(string(r.Key), prefix) {
				return
			}
			if string(r.Key) == string(ownerKey(link)) {
				var c claim
				if r.Value != nil && json.Unmarshal(r.Value, &c) == nil {
					owner = c
				}
				return
			}
			l, t, ok := parseCheckpointKey(r.Key)
			if !ok || l != link {
				return
			}
			if r.Value == nil { // a tombstone forgets the partition
				delete(out, t)
				return
			}
			var c checkpoint
			if err := json.Unmarshal(r.Value, &c); err != nil {
				return // not ours to interpret; a newer format would carry a version
			}
			out[t] = c
		})
	}
	return saved{checkpoints: out, owner: owner}, nil
}
