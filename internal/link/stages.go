package link

import (
	"encoding/json"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/provenance"
)

// A stage works on the records of one source partition on their way from
// the intake to the sink: it may drop records, rewrite them, or address
// them elsewhere, in place (it reuses recs' array and the records
// themselves) and in order. It returns what goes on. A stage never reaches
// back into the intake or the positions: the source offsets a chunk covers
// are accounted for whatever the stages make of it.
//
// The stages of a link run in this order: loop prevention, mirror (rename
// and provenance), refused-record skips. Filters, projections and
// aggregates go between loop prevention and mirror.
type stage interface {
	process(k tp, recs []*kgo.Record) []*kgo.Record
}

// loopStage drops records that came from the destination cluster in the
// first place (their provenance names it), so that links both ways between
// two clusters never echo.
type loopStage struct {
	dstID string
	// looped counts the records dropped.
	looped func(n int64)
}

func (s loopStage) process(_ tp, recs []*kgo.Record) []*kgo.Record {
	n := 0 // records kept so far; recs[:n] is the result
	for i, r := range recs {
		if len(r.Headers) > 0 {
			if o, found, _ := provenance.Find(r); found && o.ClusterID == s.dstID {
				continue
			}
		}
		if n != i {
			recs[n] = r
		}
		n++
	}
	if dropped := len(recs) - n; dropped > 0 {
		s.looped(int64(dropped))
	}
	return recs[:n]
}

// mirrorStage addresses each record to its mirror topic (same partition)
// and appends the provenance header (source cluster, site, partition,
// offset). It is the hot path: the headers and provenance values of a
// chunk come from one allocation each.
type mirrorStage struct {
	origin provenance.Encoder
	// mirror names the mirror topic of a source topic.
	mirror func(topic string) string
	names  map[string]string
}

func newMirrorStage(origin provenance.Encoder, mirror func(string) string) *mirrorStage {
	return &mirrorStage{origin: origin, mirror: mirror, names: make(map[string]string)}
}

func (s *mirrorStage) process(k tp, recs []*kgo.Record) []*kgo.Record {
	dst, ok := s.names[k.Topic]
	if !ok {
		dst = s.mirror(k.Topic)
		s.names[k.Topic] = dst
	}
	nh := 0
	for _, r := range recs {
		nh += len(r.Headers) + 1
	}
	headers := make([]kgo.RecordHeader, 0, nh)
	origins := make([]byte, 0, len(recs)*s.origin.MaxLen())
	for _, r := range recs {
		from := len(headers)
		headers = append(headers, r.Headers...)
		at := len(origins)
		origins = s.origin.Append(origins, r.Partition, r.Offset)
		headers = append(headers, kgo.RecordHeader{Key: provenance.Key, Value: origins[at:len(origins):len(origins)]})
		r.Topic = dst
		r.Headers = headers[from:len(headers):len(headers)]
	}
	return recs
}

// skipStage replaces records the destination refused before (on_error:
// skip-and-record) by a record of what was skipped and why, written to
// SkippedTopic in the same transaction. It runs after mirrorStage, whose
// provenance header it keeps.
type skipStage struct {
	l *Link
}

func (s skipStage) process(k tp, recs []*kgo.Record) []*kgo.Record {
	skip := s.l.skip[k]
	if len(skip) == 0 {
		return recs
	}
	for i, r := range recs {
		if reason, ok := skip[r.Offset]; ok {
			recs[i] = s.l.skippedEntry(k, r, reason)
		}
	}
	return recs
}

// skippedRecord is the value of a SkippedTopic record.
type skippedRecord struct {
	Site       string `json:"site,omitempty"`
	Link       string `json:"link"`
	Topic      string `json:"topic"`
	Partition  int32  `json:"partition"`
	Offset     int64  `json:"offset"`
	Timestamp  int64  `json:"timestamp_ms"`
	KeyBytes   int    `json:"key_bytes"`
	ValueBytes int    `json:"value_bytes"`
	Headers    int    `json:"headers"`
	Reason     string `json:"reason"`
}

// skippedEntry is the SkippedTopic record of a refused source record r of
// k (already mirrored: its last header is the provenance).
func (l *Link) skippedEntry(k tp, r *kgo.Record, reason string) *kgo.Record {
	l.logger.Error("record refused by the destination: skipped and recorded",
		"topic", k.Topic, "partition", k.Partition, "offset", r.Offset, "reason", reason, "recorded_in", SkippedTopic)
	v, _ := json.Marshal(skippedRecord{
		Site: l.id.Site, Link: l.id.Link, Topic: k.Topic, Partition: k.Partition, Offset: r.Offset,
		Timestamp: r.Timestamp.UnixMilli(), KeyBytes: len(r.Key), ValueBytes: len(r.Value), Headers: len(r.Headers) - 1,
		Reason: reason,
	})
	entry := &kgo.Record{Topic: SkippedTopic, Key: l.id.checkpointKey(k), Value: v, Headers: r.Headers[len(r.Headers)-1:]}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.status.SkippedRecords++
	l.eventLocked(EventSkipped, fmt.Sprintf("%s offset %d refused by the destination (%s); recorded in %s", k, r.Offset, reason, SkippedTopic))
	return entry
}
