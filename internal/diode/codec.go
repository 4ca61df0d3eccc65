package diode

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// A message is a type byte and the encoded batch or heartbeat. Lengths and
// integers are varints; a byte string that may be nil is its length plus
// one (0 for nil).
const (
	msgBatch     = 1
	msgHeartbeat = 2
)

var errShort = errors.New("message truncated")

// noTime encodes the zero time.
const noTime = math.MinInt64

func appendBatch(b []byte, bt *Batch) []byte {
	b = append(b, msgBatch)
	b = appendString(b, bt.Topic)
	b = binary.AppendVarint(b, int64(bt.Partition))
	b = binary.AppendVarint(b, bt.From)
	b = binary.AppendVarint(b, bt.To)
	b = binary.AppendUvarint(b, uint64(len(bt.Records)))
	for i := range bt.Records {
		r := &bt.Records[i]
		b = binary.AppendUvarint(b, uint64(r.Offset-bt.From))
		b = appendTime(b, r.Timestamp, true)
		b = appendBytes(b, r.Key)
		b = appendBytes(b, r.Value)
		b = binary.AppendUvarint(b, uint64(len(r.Headers)))
		for _, h := range r.Headers {
			b = appendString(b, h.Key)
			b = appendBytes(b, h.Value)
		}
	}
	return b
}

// checkBatch enforces the batch contract before it is encoded.
func checkBatch(bt *Batch) error {
	if bt.Topic == "" {
		return fmt.Errorf("%w: no topic", ErrInvalidBatch)
	}
	if bt.To < bt.From || bt.From < 0 {
		return fmt.Errorf("%w: %s/%d offsets [%d, %d)", ErrInvalidBatch, bt.Topic, bt.Partition, bt.From, bt.To)
	}
	prev := bt.From - 1
	for i := range bt.Records {
		o := bt.Records[i].Offset
		if o <= prev || o >= bt.To {
			return fmt.Errorf("%w: %s/%d record offset %d in [%d, %d) after %d", ErrInvalidBatch, bt.Topic, bt.Partition, o, bt.From, bt.To, prev)
		}
		prev = o
	}
	return nil
}

// decodeBatch decodes a batch message (without its type byte). The
// records' bytes alias m.
func decodeBatch(m []byte) (*Batch, error) {
	d := decoder{b: m}
	bt := &Batch{Topic: d.string()}
	part := d.varint()
	bt.From, bt.To = d.varint(), d.varint()
	n := d.count(8)
	if d.err != nil {
		return nil, d.err
	}
	if part < math.MinInt32 || part > math.MaxInt32 || bt.From < 0 || bt.To < bt.From {
		return nil, fmt.Errorf("batch %s/%d [%d, %d) out of range", bt.Topic, part, bt.From, bt.To)
	}
	bt.Partition = int32(part)
	if n > 0 {
		bt.Records = make([]Record, n)
	}
	prev := bt.From - 1
	for i := range bt.Records {
		r := &bt.Records[i]
		delta := d.uvarint()
		if delta >= uint64(bt.To-bt.From) {
			return nil, fmt.Errorf("record offset out of [%d, %d)", bt.From, bt.To)
		}
		r.Offset = bt.From + int64(delta)
		if r.Offset <= prev {
			return nil, fmt.Errorf("record offset %d after %d", r.Offset, prev)
		}
		prev = r.Offset
		r.Timestamp = d.time(true)
		r.Key, r.Value = d.bytes(), d.bytes()
		if nh := d.count(2); nh > 0 {
			r.Headers = make([]Header, nh)
			for j := range r.Headers {
				r.Headers[j] = Header{Key: d.string(), Value: d.bytes()}
			}
		}
		if d.err != nil {
			return nil, d.err
		}
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%d bytes after a batch", len(d.b))
	}
	return bt, nil
}

func appendHeartbeat(b []byte, h *Heartbeat) []byte {
	b = append(b, msgHeartbeat)
	b = appendString(b, h.SourceCluster)
	b = appendString(b, h.Site)
	b = appendString(b, h.Link)
	b = binary.AppendUvarint(b, uint64(len(h.Topics)))
	for _, t := range h.Topics {
		b = appendString(b, t.Name)
		b = appendString(b, t.ID)
		b = binary.AppendVarint(b, int64(t.Partitions))
		keys := make([]string, 0, len(t.Config))
		for k := range t.Config {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = binary.AppendUvarint(b, uint64(len(keys)))
		for _, k := range keys {
			b = appendString(b, k)
			b = appendString(b, t.Config[k])
		}
	}
	tps := make([]TopicPartition, 0, len(h.Positions))
	for tp := range h.Positions {
		tps = append(tps, tp)
	}
	slices.SortFunc(tps, compareTP)
	b = binary.AppendUvarint(b, uint64(len(tps)))
	for _, tp := range tps {
		b = appendString(b, tp.Topic)
		b = binary.AppendVarint(b, int64(tp.Partition))
		b = binary.AppendVarint(b, h.Positions[tp])
		origin, ok := h.Origins[tp]
		if !ok {
			origin = -1
		}
		b = binary.AppendVarint(b, origin)
	}
	b = appendTime(b, h.Sent, false)
	b = appendTime(b, h.SenderStart, false)
	b = binary.AppendUvarint(b, uint64(h.Repeat.Data))
	b = binary.AppendUvarint(b, uint64(h.Repeat.Parity))
	b = binary.AppendUvarint(b, uint64(len(h.Repeat.Repeat)))
	for _, d := range h.Repeat.Repeat {
		b = binary.AppendVarint(b, int64(d))
	}
	return binary.AppendVarint(b, int64(h.Repeat.Lag))
}

func compareTP(a, b TopicPartition) int {
	if a.Topic != b.Topic {
		if a.Topic < b.Topic {
			return -1
		}
		return 1
	}
	return int(a.Partition) - int(b.Partition)
}

// decodeHeartbeat decodes a heartbeat message (without its type byte).
func decodeHeartbeat(m []byte) (*Heartbeat, error) {
	d := decoder{b: m}
	h := &Heartbeat{SourceCluster: d.string(), Site: d.string(), Link: d.string()}
	if n := d.count(4); n > 0 {
		h.Topics = make([]Topic, n)
		for i := range h.Topics {
			t := &h.Topics[i]
			t.Name, t.ID = d.string(), d.string()
			t.Partitions = d.int32()
			if nc := d.count(2); nc > 0 {
				t.Config = make(map[string]string, nc)
				for range nc {
					k := d.string()
					t.Config[k] = d.string()
				}
			}
		}
	}
	n := d.count(3)
	h.Positions = make(map[TopicPartition]int64, n)
	h.Origins = make(map[TopicPartition]int64, n)
	for range n {
		tp := TopicPartition{Topic: d.string(), Partition: d.int32()}
		h.Positions[tp] = d.varint()
		if origin := d.varint(); origin >= 0 {
			h.Origins[tp] = origin
		}
	}
	h.Sent, h.SenderStart = d.time(false), d.time(false)
	h.Repeat.Data, h.Repeat.Parity = int(d.small(MaxGroup)), int(d.small(MaxGroup))
	if nr := d.count(1); nr > 0 {
		h.Repeat.Repeat = make([]time.Duration, nr)
		for i := range h.Repeat.Repeat {
			h.Repeat.Repeat[i] = time.Duration(d.varint())
		}
	}
	h.Repeat.Lag = time.Duration(d.varint())
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%d bytes after a heartbeat", len(d.b))
	}
	return h, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b, v []byte) []byte {
	if v == nil {
		return append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(v))+1)
	return append(b, v...)
}

// appendTime encodes t in milliseconds (ms) or nanoseconds since the epoch.
func appendTime(b []byte, t time.Time, ms bool) []byte {
	switch {
	case t.IsZero():
		return binary.AppendVarint(b, noTime)
	case ms:
		return binary.AppendVarint(b, t.UnixMilli())
	default:
		return binary.AppendVarint(b, t.UnixNano())
	}
}

// decoder reads a message; the first error sticks and later reads return
// zero values.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.b = nil
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(errShort)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(errShort)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) int32() int32 {
	v := d.varint()
	if v < math.MinInt32 || v > math.MaxInt32 {
		d.fail(fmt.Errorf("%d is out of range", v))
		return 0
	}
	return int32(v)
}

// small reads a count of at most limit.
func (d *decoder) small(limit uint64) uint64 {
	v := d.uvarint()
	if v > limit {
		d.fail(fmt.Errorf("%d is above %d", v, limit))
		return 0
	}
	return v
}

// count reads the number of elements that follow, each at least minSize
// bytes, so that a corrupt count cannot make a large allocation.
func (d *decoder) count(minSize int) int {
	v := d.uvarint()
	if v > uint64(len(d.b)/minSize) {
		d.fail(fmt.Errorf("count %d is more than the message holds", v))
		return 0
	}
	return int(v)
}

func (d *decoder) take(n uint64) []byte {
	if n > uint64(len(d.b)) {
		d.fail(errShort)
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string { return string(d.take(d.uvarint())) }

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n == 0 || d.err != nil {
		return nil
	}
	return d.take(n - 1)
}

func (d *decoder) time(ms bool) time.Time {
	v := d.varint()
	switch {
	case d.err != nil || v == noTime:
		return time.Time{}
	case ms:
		return time.UnixMilli(v)
	default:
		return time.Unix(0, v)
	}
}
