// Package provenance encodes the header edgelink adds to every record it
// mirrors: where the record came from (the source cluster's id and the site)
// and its offset there. Links use it to avoid replicating a record back to
// the cluster it came from; the checker and offset translation use the offset.
//
// The header key is [Key]. Its value is binary and versioned:
//
//	byte    version (1)
//	uvarint len(cluster id), cluster id bytes
//	uvarint len(site), site bytes
//	uvarint source partition
//	uvarint source offset
//
// For a 22-character Kafka cluster id and a short site name the value is
// about 35 bytes.
package provenance

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Key is the record header key of the provenance header.
const Key = "edgelink.src"

const version1 = 1

// ErrMalformed reports a provenance header that cannot be decoded.
var ErrMalformed = errors.New("malformed provenance header")

// Origin is where a mirrored record was first read.
type Origin struct {
	// ClusterID is the Kafka cluster id of the source cluster.
	ClusterID string
	// Site is the source agent's site, possibly empty.
	Site string
	// Partition and Offset locate the record in the source topic.
	Partition int32
	Offset    int64
}

// Append appends the encoded value of o to dst.
func (o Origin) Append(dst []byte) []byte {
	return NewEncoder(o.ClusterID, o.Site).Append(dst, o.Partition, o.Offset)
}

// Header returns o as a record header.
func (o Origin) Header() kgo.RecordHeader {
	return kgo.RecordHeader{Key: Key, Value: o.Append(make([]byte, 0, 8+len(o.ClusterID)+len(o.Site)+10))}
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

// MaxLen is the longest value e appends.
func (e Encoder) MaxLen() int { return len(e.prefix) + 2*binary.MaxVarintLen64 }

// Append appends the value for the record at partition and offset to dst.
func (e Encoder) Append(dst []byte, partition int32, offset int64) []byte {
	dst = append(dst, e.prefix...)
	dst = binary.AppendUvarint(dst, uint64(partition))
	return binary.AppendUvarint(dst, uint64(offset))
}

// Decode decodes a header value.
func Decode(v []byte) (Origin, error) {
	var o Origin
	if len(v) == 0 || v[0] != version1 {
		return o, fmt.Errorf("%w: unknown version", ErrMalformed)
	}
	v = v[1:]
	str := func() (string, bool) {
		n, k := binary.Uvarint(v)
		if k <= 0 || uint64(len(v)-k) < n {
			return "", false
		}
		s := string(v[k : k+int(n)])
		v = v[k+int(n):]
		return s, true
	}
	num := func() (uint64, bool) {
		n, k := binary.Uvarint(v)
		if k <= 0 {
			return 0, false
		}
		v = v[k:]
		return n, true
	}
	var ok bool
	if o.ClusterID, ok = str(); !ok {
		return o, fmt.Errorf("%w: cluster id", ErrMalformed)
	}
	if o.Site, ok = str(); !ok {
		return o, fmt.Errorf("%w: site", ErrMalformed)
	}
	p, ok := num()
	if !ok || p > 1<<31-1 {
		return o, fmt.Errorf("%w: partition", ErrMalformed)
	}
	off, ok := num()
	if !ok || off > 1<<63-1 {
		return o, fmt.Errorf("%w: offset", ErrMalformed)
	}
	o.Partition, o.Offset = int32(p), int64(off)
	return o, nil
}

// Find returns the provenance header of r, if any. When a record carries
// several (it crossed several links), the first one, the original origin,
// is returned.
func Find(r *kgo.Record) (Origin, bool, error) {
	for _, h := range r.Headers {
		if h.Key == Key {
			o, err := Decode(h.Value)
			return o, true, err
		}
	}
	return Origin{}, false, nil
}
