// Package provenance encodes the header edgelink adds to every record it
// mirrors: where the link read the record (its immediate source: the
// cluster's id, the site, the partition and the offset there) and every
// cluster the record was in before that one. Links use it to never copy a
// record into a cluster it has already been in, whatever the topic names;
// the checker and offset translation use the immediate source's offset.
//
// The header key is [Key]; a mirrored record carries one. Its value is
// binary and versioned. Version 1, for a record read in the cluster it was
// first written to (what every earlier release wrote):
//
//	byte    version (1)
//	uvarint len(cluster id), cluster id bytes
//	uvarint len(site), site bytes
//	uvarint source partition
//	uvarint source offset
//
// Version 2, for a record that crossed earlier links: version byte 2, the
// same four fields, then its earlier hops, oldest first:
//
//	uvarint number of earlier hops n (at most MaxHops)
//	n × (uvarint len(cluster id), cluster id bytes)
//
// A record with no earlier hop is always written as version 1, so that
// agents and checkers that only read version 1 keep working wherever a
// record crosses one link. For a 22-character Kafka cluster id and a short
// site name a version 1 value is about 35 bytes; each earlier hop adds 23.
//
// When a link mirrors a record that already carries provenance headers
// (written by the link that brought it into the source), it replaces them
// by one whose hops are their hops and immediate sources, in order
// ([Encoder.AppendChained]). Headers named [Key] that cannot be decoded are
// not edgelink's: they are left alone.
package provenance

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Key is the record header key of the provenance header.
const Key = "edgelink.src"

// MaxHops is the most earlier hops a header lists: a record can cross a
// chain of at most MaxHops+1 links. A longer chain is a configuration that
// edgelink refuses ([ErrTooManyHops]) rather than forget where a record
// has been, which would let it circle a ring of clusters forever.
const MaxHops = 16

// AppendChained writes the number of hops as one byte.
var _ [127 - MaxHops]struct{}

const (
	version1 = 1
	version2 = 2
)

var (
	// ErrMalformed reports a provenance header that cannot be decoded.
	ErrMalformed = errors.New("malformed provenance header")
	// ErrTooManyHops reports a record that has been in more than MaxHops
	// clusters before the one a link reads it from.
	ErrTooManyHops = errors.New("record has crossed too many links")
)

// Origin is a decoded provenance header: where a link read a mirrored
// record, and where the record was before.
type Origin struct {
	// ClusterID is the Kafka cluster id of the link's source cluster.
	ClusterID string
	// Site is the site of the agent that read it there, possibly empty.
	Site string
	// Partition and Offset locate the record in the source topic.
	Partition int32
	Offset    int64
	// Hops lists the ids of the clusters the record was in before
	// ClusterID, oldest first; nil when it was first written there. At
	// most MaxHops.
	Hops []string
}

// First returns the id of the cluster the record was first written to.
func (o Origin) First() string {
	if len(o.Hops) > 0 {
		return o.Hops[0]
	}
	return o.ClusterID
}

// Visited reports whether the record has been in cluster id: it is the
// source cluster or one of the earlier hops.
func (o Origin) Visited(id string) bool {
	if o.ClusterID == id {
		return true
	}
	for _, h := range o.Hops {
		if h == id {
			return true
		}
	}
	return false
}

// Append appends the encoded value of o to dst: version 1 when o has no
// hops. o must have at most MaxHops hops (Decode refuses more).
func (o Origin) Append(dst []byte) []byte {
	at := len(dst)
	dst = NewEncoder(o.ClusterID, o.Site).Append(dst, o.Partition, o.Offset)
	if len(o.Hops) == 0 {
		return dst
	}
	dst[at] = version2
	dst = binary.AppendUvarint(dst, uint64(len(o.Hops)))
	for _, h := range o.Hops {
		dst = binary.AppendUvarint(dst, uint64(len(h)))
		dst = append(dst, h...)
	}
	return dst
}

// encodedLen is the length of o's value.
func (o Origin) encodedLen() int {
	n := 1 + uvarintLen(uint64(len(o.ClusterID))) + len(o.ClusterID) + uvarintLen(uint64(len(o.Site))) + len(o.Site) +
		uvarintLen(uint64(o.Partition)) + uvarintLen(uint64(o.Offset))
	if len(o.Hops) > 0 {
		n += uvarintLen(uint64(len(o.Hops)))
		for _, h := range o.Hops {
			n += uvarintLen(uint64(len(h))) + len(h)
		}
	}
	return n
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// Header returns o as a record header.
func (o Origin) Header() kgo.RecordHeader {
	return kgo.RecordHeader{Key: Key, Value: o.Append(make([]byte, 0, o.encodedLen()))}
}

// Encoder encodes the values of one source cluster and site, whose encoded
// prefix it keeps, so that a record costs only its partition and offset.
type Encoder struct{ prefix []byte }

// NewEncoder returns an Encoder for records read from clusterID at site.
func NewEncoder(clusterID, site string) Encoder {
	p := make([]byte, 0, 1+2*binary.MaxVarintLen64+len(clusterID)+len(site))
	p = append(p, version1)
	p = binary.AppendUvarint(p, uint64(len(clusterID)))
	p = append(p, clusterID...)
	p = binary.AppendUvarint(p, uint64(len(site)))
	return Encoder{prefix: append(p, site...)}
}

// MaxLen is the longest value e appends for a record without earlier hops.
func (e Encoder) MaxLen() int { return len(e.prefix) + 2*binary.MaxVarintLen64 }

// Append appends the value for the record at partition and offset, which
// has no earlier hops, to dst.
func (e Encoder) Append(dst []byte, partition int32, offset int64) []byte {
	dst = append(dst, e.prefix...)
	dst = binary.AppendUvarint(dst, uint64(partition))
	return binary.AppendUvarint(dst, uint64(offset))
}

// AppendChained appends to dst the value for the record at partition and
// offset whose headers are headers: its earlier hops are those of each
// provenance header among them that can be decoded, followed by that
// header's cluster, in order. Those headers are the ones the new value
// replaces (see [Valid]). A record without any is encoded as by Append.
// It returns ErrTooManyHops, and dst unchanged, when the record has been
// in more than MaxHops clusters before this one. It does not allocate
// beyond growing dst.
func (e Encoder) AppendChained(dst []byte, partition int32, offset int64, headers []kgo.RecordHeader) ([]byte, error) {
	at := len(dst)
	dst = e.Append(dst, partition, offset)
	count := len(dst)
	dst = append(dst, 0) // the number of hops: one byte, as MaxHops < 128
	n := 0
	for _, h := range headers {
		if h.Key != Key {
			continue
		}
		if f, ok := parse(h.Value); ok {
			dst = append(dst, f.hops...)
			dst = binary.AppendUvarint(dst, uint64(len(f.cluster)))
			dst = append(dst, f.cluster...)
			n += f.nhops + 1
		}
	}
	switch {
	case n == 0:
		return dst[:count], nil // version 1
	case n > MaxHops:
		return dst[:at], fmt.Errorf("%w: it has been in %d clusters before this one (%s), more than %d", ErrTooManyHops, n, strings.Join(Chain(headers), ", "), MaxHops)
	}
	dst[at] = version2
	dst[count] = byte(n)
	return dst, nil
}

// Valid reports whether h is a provenance header that can be decoded: one
// that a link mirroring its record replaces.
func Valid(h kgo.RecordHeader) bool {
	if h.Key != Key {
		return false
	}
	_, ok := parse(h.Value)
	return ok
}

// Visited reports whether a record with headers has been in cluster id:
// one of its provenance headers that can be decoded names id as its source
// cluster or as an earlier hop. It does not allocate.
func Visited(headers []kgo.RecordHeader, id string) bool {
	for _, h := range headers {
		if h.Key != Key {
			continue
		}
		f, ok := parse(h.Value)
		if !ok {
			continue
		}
		if string(f.cluster) == id {
			return true
		}
		for c := range f.eachHop {
			if string(c) == id {
				return true
			}
		}
	}
	return false
}

// Chain returns the ids of every cluster a record with headers has been
// in before the one holding it, oldest first: what the hops of the header
// a link writes for it are (see AppendChained), even beyond MaxHops.
func Chain(headers []kgo.RecordHeader) []string {
	var out []string
	for _, h := range headers {
		if h.Key != Key {
			continue
		}
		f, ok := parse(h.Value)
		if !ok {
			continue
		}
		for c := range f.eachHop {
			out = append(out, string(c))
		}
		out = append(out, string(f.cluster))
	}
	return out
}

// Decode decodes a header value.
func Decode(v []byte) (Origin, error) {
	f, bad := parseIn(v)
	if bad != "" {
		return Origin{}, fmt.Errorf("%w: %s", ErrMalformed, bad)
	}
	o := Origin{ClusterID: string(f.cluster), Site: string(f.site), Partition: int32(f.partition), Offset: int64(f.offset)}
	if f.nhops > 0 {
		o.Hops = make([]string, 0, f.nhops)
		for c := range f.eachHop {
			o.Hops = append(o.Hops, string(c))
		}
	}
	return o, nil
}

// Find returns the provenance header of r: the last one, which the link
// that wrote r added (a record written by an earlier release that crossed
// several links carries one per hop, the latest last).
func Find(r *kgo.Record) (Origin, bool, error) {
	for i := len(r.Headers) - 1; i >= 0; i-- {
		if r.Headers[i].Key == Key {
			o, err := Decode(r.Headers[i].Value)
			return o, true, err
		}
	}
	return Origin{}, false, nil
}

// fields is a header value decoded in place: its byte slices are v's.
type fields struct {
	cluster, site     []byte
	partition, offset uint64
	// hops holds the encoded earlier hops (after their count), nhops of
	// them.
	hops  []byte
	nhops int
}

// eachHop yields the cluster id of each earlier hop, oldest first.
func (f fields) eachHop(yield func([]byte) bool) {
	for hops := f.hops; len(hops) > 0; {
		c, rest, ok := next(hops)
		if !ok || !yield(c) {
			return
		}
		hops = rest
	}
}

func parse(v []byte) (fields, bool) {
	f, bad := parseIn(v)
	return f, bad == ""
}

// parseIn decodes v in place, or names the field it cannot decode. Bytes
// after the last field are ignored (a later version may add fields).
func parseIn(v []byte) (f fields, bad string) {
	if len(v) == 0 || v[0] != version1 && v[0] != version2 {
		return f, "unknown version"
	}
	version := v[0]
	rest := v[1:]
	var ok bool
	if f.cluster, rest, ok = next(rest); !ok {
		return f, "cluster id"
	}
	if f.site, rest, ok = next(rest); !ok {
		return f, "site"
	}
	p, k := binary.Uvarint(rest)
	if k <= 0 || p > 1<<31-1 {
		return f, "partition"
	}
	rest = rest[k:]
	off, k := binary.Uvarint(rest)
	if k <= 0 || off > 1<<63-1 {
		return f, "offset"
	}
	rest = rest[k:]
	f.partition, f.offset = p, off
	if version == version1 {
		return f, ""
	}
	n, k := binary.Uvarint(rest)
	if k <= 0 || n > MaxHops {
		return f, "number of hops"
	}
	rest = rest[k:]
	start := rest
	for range n {
		if _, rest, ok = next(rest); !ok {
			return f, "hop"
		}
	}
	f.hops, f.nhops = start[:len(start)-len(rest)], int(n)
	return f, ""
}

// next splits a length-prefixed string off v.
func next(v []byte) (s, rest []byte, ok bool) {
	if len(v) > 0 && v[0] < 0x80 { // every id and site shorter than 128 bytes
		n := int(v[0])
		if len(v)-1 < n {
			return nil, v, false
		}
		return v[1 : 1+n], v[1+n:], true
	}
	n, k := binary.Uvarint(v)
	if k <= 0 || uint64(len(v)-k) < n {
		return nil, v, false
	}
	return v[k : k+int(n)], v[k+int(n):], true
}
