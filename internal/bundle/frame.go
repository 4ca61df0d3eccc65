package bundle

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
)

// flagSamePartition marks a frame of the same partition as the frame before
// it in the chunk.
const flagSamePartition = 1

// maxFrame bounds the size of one frame, hence of one record.
const maxFrame = 256 << 20

// frameHead is room kept in front of a frame's body for its length.
const frameHead = binary.MaxVarintLen64

// frameState is what a frame is encoded relative to: the frame before it in
// the chunk.
type frameState struct {
	started   bool // a frame was encoded or decoded in this chunk
	topic     int
	partition int32
	offset    int64
	timestamp int64 // Unix milliseconds; 0 before the first frame
}

// encodeFrame encodes r, of topic index topic, after the frame st describes,
// into buf, which it returns grown as needed, and returns the frame itself,
// a subslice of it. st becomes r's.
func encodeFrame(buf []byte, st *frameState, topic int, r *Record) (grown, frame []byte) {
	if cap(buf) < frameHead {
		buf = make([]byte, frameHead, 4<<10)
	}
	body := buf[:frameHead]
	ts := millis(r.Timestamp)
	if st.started && st.topic == topic && st.partition == r.Partition && r.Offset > st.offset {
		body = append(body, flagSamePartition)
		body = binary.AppendUvarint(body, uint64(r.Offset-st.offset-1))
	} else {
		body = append(body, 0)
		body = binary.AppendUvarint(body, uint64(topic))
		body = binary.AppendUvarint(body, uint64(r.Partition))
		body = binary.AppendUvarint(body, uint64(r.Offset))
	}
	body = binary.AppendVarint(body, ts-st.timestamp)
	body = appendBytes(body, r.Key)
	body = appendBytes(body, r.Value)
	body = binary.AppendUvarint(body, uint64(len(r.Headers)))
	for _, h := range r.Headers {
		body = binary.AppendUvarint(body, uint64(len(h.Key)))
		body = append(body, h.Key...)
		body = appendBytes(body, h.Value)
	}
	*st = frameState{started: true, topic: topic, partition: r.Partition, offset: r.Offset, timestamp: ts}

	// Put the length right before the body.
	var head [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(head[:], uint64(len(body)-frameHead))
	start := frameHead - n
	copy(body[start:], head[:n])
	return body, body[start:]
}

// appendBytes appends b as a nullable byte string: uvarint 0 for nil, else
// uvarint len+1 and the bytes.
func appendBytes(dst, b []byte) []byte {
	if b == nil {
		return append(dst, 0)
	}
	dst = binary.AppendUvarint(dst, uint64(len(b))+1)
	return append(dst, b...)
}

// errTruncated is a frame cut short by the end of its chunk.
var errTruncated = errors.New("chunk ends in the middle of a record")

// frameReader reads the frames of a chunk's decompressed stream. The record
// it returns points into its buffer, valid until the next read.
type frameReader struct {
	r       *bufio.Reader
	topics  []Topic
	st      frameState
	buf     []byte
	rec     Record
	headers []Header          // of rec, reused
	keys    map[string]string // header keys, interned
}

// reset starts reading the frames of a new chunk from r.
func (fr *frameReader) reset(r *bufio.Reader) {
	fr.r = r
	fr.st = frameState{}
}

// next reads the next frame into fr.rec and returns its topic index. At the
// end of the stream, between frames, it returns io.EOF. Its other errors
// describe a malformed stream, or come from the reader.
func (fr *frameReader) next() (int, error) {
	n, err := binary.ReadUvarint(fr.r)
	switch {
	case errors.Is(err, io.EOF):
		return 0, io.EOF
	case errors.Is(err, io.ErrUnexpectedEOF):
		return 0, errTruncated
	case err != nil:
		return 0, fmt.Errorf("record length: %w", err)
	case n == 0 || n > maxFrame:
		return 0, fmt.Errorf("record of %d bytes", n)
	}
	// Grow the buffer as the bytes come, so that a corrupt length costs no
	// more memory than the stream holds.
	fr.buf = fr.buf[:0]
	for rest := int(n); rest > 0; {
		step := min(rest, 1<<20)
		fr.buf = slices.Grow(fr.buf, step)
		got, err := io.ReadFull(fr.r, fr.buf[len(fr.buf):len(fr.buf)+step])
		fr.buf = fr.buf[:len(fr.buf)+got]
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, errTruncated
		}
		if err != nil {
			return 0, err
		}
		rest -= got
	}
	return fr.decode(fr.buf)
}

// decode decodes the body of one frame into fr.rec and returns its topic
// index.
func (fr *frameReader) decode(body []byte) (int, error) {
	d := decoder{b: body}
	flags := d.byte()
	st := &fr.st
	var topic int
	var partition int32
	var offset int64
	switch flags {
	case 0:
		t := d.uvarint()
		p := d.uvarint()
		o := d.uvarint()
		if d.err != nil {
			return 0, d.err
		}
		if t >= uint64(len(fr.topics)) {
			return 0, fmt.Errorf("record of topic %d, the bundle has %d topics", t, len(fr.topics))
		}
		if p > math.MaxInt32 || o > math.MaxInt64 {
			return 0, fmt.Errorf("record at partition %d, offset %d", p, o)
		}
		topic, partition, offset = int(t), int32(p), int64(o)
	case flagSamePartition:
		delta := d.uvarint()
		if d.err != nil {
			return 0, d.err
		}
		if !st.started {
			return 0, errors.New("first record of a chunk refers to a record before it")
		}
		if delta > uint64(math.MaxInt64-1-st.offset) {
			return 0, fmt.Errorf("record offset %d + %d overflows", st.offset, delta)
		}
		topic, partition, offset = st.topic, st.partition, st.offset+1+int64(delta)
	default:
		return 0, fmt.Errorf("record flags %#x", flags)
	}
	ts := st.timestamp + d.varint()
	key := d.bytes()
	value := d.bytes()
	nh := d.uvarint()
	if d.err == nil && nh > uint64(len(d.b)/2) { // a header takes 2 bytes at least
		return 0, fmt.Errorf("record with %d headers in %d bytes", nh, len(d.b))
	}
	r := &fr.rec
	fr.headers = fr.headers[:0]
	for range nh {
		k := d.bytesN(d.uvarint())
		v := d.bytes()
		if d.err != nil {
			break
		}
		fr.headers = append(fr.headers, Header{Key: fr.intern(k), Value: v})
	}
	if d.err != nil {
		return 0, d.err
	}
	if len(d.b) != 0 {
		return 0, fmt.Errorf("%d bytes after a record", len(d.b))
	}
	r.Topic = fr.topics[topic].Name
	r.Partition = partition
	r.Offset = offset
	r.Timestamp = fromMillis(ts)
	r.Key = key
	r.Value = value
	r.Headers = nil
	if len(fr.headers) > 0 {
		r.Headers = fr.headers
	}
	*st = frameState{started: true, topic: topic, partition: partition, offset: offset, timestamp: ts}
	return topic, nil
}

// intern returns k as a string, allocating only for a header key it has not
// seen (up to a bound).
func (fr *frameReader) intern(k []byte) string {
	if s, ok := fr.keys[string(k)]; ok {
		return s
	}
	s := string(k)
	if fr.keys == nil {
		fr.keys = make(map[string]string)
	}
	if len(fr.keys) < 1024 && len(s) <= 256 {
		fr.keys[s] = s
	}
	return s
}

// decoder reads the fields of a frame's body; its first error sticks and
// makes every later read return zero.
type decoder struct {
	b   []byte
	err error
}

var errShort = errors.New("record cut short")

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.fail(errShort)
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(errors.New("malformed varint in a record"))
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(errors.New("malformed varint in a record"))
		return 0
	}
	d.b = d.b[n:]
	return v
}

// bytes reads a nullable byte string, see [appendBytes]. The result has no
// room to grow into the bytes after it.
func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n == 0 || d.err != nil {
		return nil
	}
	return d.bytesN(n - 1)
}

// bytesN reads n bytes. The result is not nil, even when n is 0, unless
// an error occurred.
func (d *decoder) bytesN(n uint64) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail(errShort)
		return nil
	}
	b := d.b[:n:n]
	d.b = d.b[n:]
	return b
}
