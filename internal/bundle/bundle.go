// Package bundle is the on-disk format of an air-gap bundle: the records of
// one link, exported at an air-gapped site into a directory that a person
// carries to the cloud, where they are imported into Kafka. This package
// writes, reads, verifies, signs and encrypts bundles; moving records between
// Kafka and a bundle is the engine's job.
//
// # Layout
//
// A bundle is a directory:
//
//	manifest.json       what the bundle holds, in clear, signed
//	manifest.sig        the signature of manifest.json
//	chunk-000001.elb    the records, in order, split over chunk files
//	chunk-000002.elb
//	...
//
// The export writes the chunks first, then manifest.sig and manifest.json,
// each under a temporary name, synced, then renamed, manifest.json last: a
// directory without manifest.json is an export that did not finish.
//
// # Manifest
//
// manifest.json is the JSON of [Manifest], indented, and is signed byte for
// byte as written: a reader verifies the signature over the exact bytes
// before it decodes them, and [Manifest.Hash], the hex SHA-256 of those
// bytes, is the bundle's identity. Each bundle of a link names the hash of
// the bundle it follows (Previous), so that bundles form a chain and the
// importer can tell a missing or repeated bundle. The manifest is in clear
// even when the chunks are encrypted: anyone holding a trusted public key can
// check what a bundle claims without being able to read it.
//
// The manifest lists the source topics (id, partition count and the configs
// to create their mirrors with), and per source partition the range of
// offsets [From, To) the export read: every record of that range that the
// bundle carries is in it, and an offset of the range without a record (an
// aborted transaction, a control marker, a filtered record) is simply absent.
// It lists the chunk files with their size, SHA-256 and record count, and
// counts per range and in total. Bytes always counts the records' payload:
// their keys, values, header keys and header values.
//
// A reader that meets a Format other than 1 refuses the bundle. Fields may
// be added to format 1 when a reader can ignore them; anything else is a new
// format.
//
// # Signature
//
// manifest.sig is JSON: {"key": KEY ID, "signature": BASE64}, an ed25519
// signature (package signing) of manifest.json's bytes in the domain
// [signing.DomainBundle], by the key whose id ([signing.Fingerprint]) is
// given; the manifest names the same key (signed_by). The SHA-256 of every
// chunk file is in the manifest, so the signature covers every byte of the
// bundle.
//
// # Chunks
//
// A chunk file is, from the outside in: optionally an age file
// (filippo.io/age) encrypted to the bundle's recipients, each chunk with its
// own file key; a zstd stream (one frame, with its checksum); and in it a
// sequence of record frames up to the end of the stream. The SHA-256 in the
// manifest is over the file's bytes as stored. A chunk file never exceeds the
// writer's chunk size (for instance 4 GiB - 1 on FAT32).
//
// # Record frames
//
// A frame is one record, preceded by its length:
//
//	uvarint  length of the frame's body, then the body:
//	byte     flags: 1 when the record is of the same partition as the
//	         frame before it in the chunk, else 0
//	         when flags is 0:
//	uvarint    topic: index into the manifest's topics
//	uvarint    partition
//	uvarint    offset
//	         when flags is 1:
//	uvarint    offset - the previous frame's offset - 1
//	varint   timestamp in Unix milliseconds - the previous frame's (0 before
//	         the first frame of a chunk)
//	bytes    key
//	bytes    value
//	uvarint  number of headers, then per header:
//	uvarint    length of its key, then the key
//	bytes      its value
//
// where bytes is a uvarint n, 0 for null, else n-1 bytes follow: a null key,
// a null value (a tombstone) or a null header value are told from empty
// ones. Varints are those of encoding/binary (a varint is zig-zag encoded).
// A frame's body is at most 256 MiB. A chunk is decoded on its own: the
// first frame of a chunk has flags 0. The offsets of a partition strictly
// increase over the whole bundle.
//
// # Memory
//
// Writing and reading stream: memory is bounded by the largest record and
// a few MiB of buffers (the compressor's 1 MiB window, three blocks of
// 128 KiB, age's 64 KiB chunks), whatever the size of the bundle.
//
// # Receipts
//
// The importer writes a [Receipt], plain JSON, which the person carries back
// to the site: it says what the destination holds, so that the site can
// tell what was delivered. Receipts are not signed: the site trusts the
// person carrying a receipt as much as the one who edits its configuration.
package bundle

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Format is the bundle format this package writes and reads.
const Format = 1

// Compression is the compression of every chunk of a format 1 bundle.
const Compression = "zstd"

// Names of the files of a bundle.
const (
	// ManifestFile is the name of the manifest in a bundle's directory.
	ManifestFile = "manifest.json"
	// SignatureFile is the name of the manifest's signature.
	SignatureFile = "manifest.sig"
)

// Errors of this package, wrapped with what failed and where; test with
// errors.Is. Any other error from a reader is an I/O error or a
// cancellation.
var (
	// ErrTampered means the bundle is not what was signed: the signature
	// does not match manifest.json (the error also wraps
	// signing.ErrBadSignature), or a chunk file is missing or differs in
	// size or SHA-256 from the manifest. The error names the file.
	ErrTampered = errors.New("bundle altered or damaged since it was signed")
	// ErrUntrusted means the bundle is signed by a key that is not trusted.
	// The error names the key and the trusted keys.
	ErrUntrusted = errors.New("bundle not signed by a trusted key")
	// ErrDecrypt means the bundle is encrypted and no key was given to
	// decrypt it, or none of the keys given opens it.
	ErrDecrypt = errors.New("bundle cannot be decrypted")
	// ErrFormat means the bundle, signed as it is, cannot be read: an
	// unknown format version, a malformed manifest or chunk, a record
	// outside its range, counts that do not match.
	ErrFormat = errors.New("malformed or unsupported bundle")
)

// Header is a record header. Its Value may be nil, which is not the same as
// empty.
type Header struct {
	Key   string
	Value []byte
}

// Record is one record of a source partition, as read at the site.
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	// Timestamp is kept to the millisecond, like Kafka's. A reader returns
	// it in UTC.
	Timestamp time.Time
	// Key and Value may be nil, which is not the same as empty: a nil Value
	// is a tombstone.
	Key, Value []byte
	// Headers keep their order and duplicates.
	Headers []Header
}

// size is the payload size of r: what Bytes counts.
func (r *Record) size() int64 {
	n := len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return int64(n)
}

// Topic is a source topic of a bundle.
type Topic struct {
	// Name is the source topic's name.
	Name string `json:"name"`
	// ID is the source topic's id (a UUID string).
	ID string `json:"id,omitempty"`
	// Partitions is the source topic's partition count.
	Partitions int32 `json:"partitions"`
	// Config holds the topic configs to create its mirror with.
	Config map[string]string `json:"config,omitempty"`
}

// Range is what a bundle accounts for in one source partition.
type Range struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// From and To bound the source offsets read, [From, To): every record
	// of the partition in that range that the bundle carries is in it;
	// offsets of the range without a record (aborted transactions, control
	// markers, filtered records) are absent.
	From int64 `json:"from"`
	To   int64 `json:"to"`
	// Records is the number of records carried and Bytes their payload
	// (keys, values, header keys and header values).
	Records int64 `json:"records"`
	Bytes   int64 `json:"bytes"`
	// FirstTimestamp and LastTimestamp are those of the first and the last
	// record carried (the lowest and highest offset), zero when none is.
	FirstTimestamp time.Time `json:"first_timestamp,omitzero"`
	LastTimestamp  time.Time `json:"last_timestamp,omitzero"`
}

// Chunk is one chunk file of a bundle.
type Chunk struct {
	// File is the file's name in the bundle's directory.
	File string `json:"file"`
	// Bytes is the file's size and SHA256 the hex SHA-256 of its bytes.
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
	// Records is the number of records in the chunk.
	Records int64 `json:"records"`
}

// Manifest describes a bundle: it is manifest.json.
type Manifest struct {
	// Format is the bundle format, [Format].
	Format int `json:"format"`
	// ID is the random 128-bit id of the bundle, in hex.
	ID string `json:"id"`
	// Sequence numbers the bundles of a link: 1, 2, 3...
	Sequence int64 `json:"sequence"`
	// Previous is the [Manifest.Hash] of the bundle this one follows, empty
	// for sequence 1.
	Previous string `json:"previous,omitempty"`
	// Site and Link name the link that exported the bundle.
	Site string `json:"site,omitempty"`
	Link string `json:"link"`
	// SourceCluster is the source Kafka cluster's id.
	SourceCluster string `json:"source_cluster,omitempty"`
	// Created is when the export began.
	Created time.Time `json:"created"`
	// Topics are the source topics; records refer to them by index.
	Topics []Topic `json:"topics"`
	// Ranges are what the bundle accounts for, per source partition, sorted
	// by topic and partition.
	Ranges []Range `json:"ranges"`
	// Records is the number of records in the bundle and Bytes their
	// payload.
	Records int64 `json:"records"`
	Bytes   int64 `json:"bytes"`
	// Chunks are the chunk files, in the order of their records.
	Chunks []Chunk `json:"chunks"`
	// Compression is the chunks' compression, [Compression].
	Compression string `json:"compression"`
	// Encrypted tells whether the chunks are encrypted, and Recipients to
	// how many age recipients.
	Encrypted  bool `json:"encrypted"`
	Recipients int  `json:"recipients,omitempty"`
	// SignedBy is the id of the key that signed the manifest
	// ([signing.Fingerprint]).
	SignedBy string `json:"signed_by"`

	// raw holds the manifest's bytes as signed, once written or read.
	raw []byte
}

// Hash returns the bundle's identity, which the link's next bundle names as
// its Previous: the hex SHA-256 of the manifest's bytes as signed, those
// written by [Writer.Close] or read by [Open]. For a manifest built
// otherwise, it is the hash of the bytes it would be written as.
func (m *Manifest) Hash() string {
	raw := m.raw
	if raw == nil {
		var err error
		if raw, err = m.marshal(); err != nil {
			return ""
		}
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

// marshal returns the bytes m is written as.
func (m *Manifest) marshal() ([]byte, error) {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	return append(data, '\n'), nil
}

// partitionKey identifies a source partition by topic index.
type partitionKey struct {
	topic     int
	partition int32
}

// checkHeader checks what the writer is given: the manifest's identity,
// topics and ranges, not its counts and chunks. It returns the index of every
// topic by name.
func (m *Manifest) checkHeader() (map[string]int, error) {
	if m.Sequence < 1 {
		return nil, fmt.Errorf("sequence %d: the first bundle of a link is 1", m.Sequence)
	}
	switch {
	case m.Sequence == 1 && m.Previous != "":
		return nil, fmt.Errorf("bundle 1 names a previous bundle (%s)", m.Previous)
	case m.Sequence > 1 && !isHex(m.Previous, sha256.Size):
		return nil, fmt.Errorf("bundle %d: previous %q is not the hash of a bundle (64 hex digits)", m.Sequence, m.Previous)
	}
	if m.ID != "" && !isHex(m.ID, 16) {
		return nil, fmt.Errorf("id %q: want 32 hex digits", m.ID)
	}
	if m.Link == "" {
		return nil, errors.New("no link name")
	}
	topics := make(map[string]int, len(m.Topics))
	for i, t := range m.Topics {
		if t.Name == "" {
			return nil, fmt.Errorf("topic %d has no name", i)
		}
		if _, dup := topics[t.Name]; dup {
			return nil, fmt.Errorf("topic %s listed twice", t.Name)
		}
		if t.Partitions < 1 {
			return nil, fmt.Errorf("topic %s: %d partitions", t.Name, t.Partitions)
		}
		topics[t.Name] = i
	}
	for i, r := range m.Ranges {
		ti, ok := topics[r.Topic]
		if !ok {
			return nil, fmt.Errorf("range %s/%d: topic %s is not among the bundle's topics", r.Topic, r.Partition, r.Topic)
		}
		if r.Partition < 0 || r.Partition >= m.Topics[ti].Partitions {
			return nil, fmt.Errorf("range %s/%d: topic %s has %d partitions", r.Topic, r.Partition, r.Topic, m.Topics[ti].Partitions)
		}
		if r.From < 0 || r.To < r.From {
			return nil, fmt.Errorf("range %s/%d: offsets [%d, %d)", r.Topic, r.Partition, r.From, r.To)
		}
		if i > 0 {
			switch p := m.Ranges[i-1]; compareRanges(p, r) {
			case 0:
				return nil, fmt.Errorf("range %s/%d: listed twice", r.Topic, r.Partition)
			case 1:
				return nil, fmt.Errorf("range %s/%d after %s/%d: ranges are sorted by topic and partition", r.Topic, r.Partition, p.Topic, p.Partition)
			}
		}
	}
	return topics, nil
}

// compareRanges orders ranges by topic, then partition.
func compareRanges(a, b Range) int {
	if c := strings.Compare(a.Topic, b.Topic); c != 0 {
		return c
	}
	switch {
	case a.Partition < b.Partition:
		return -1
	case a.Partition > b.Partition:
		return 1
	}
	return 0
}

// check checks a manifest read from a bundle: its header as
// [Manifest.checkHeader] and its counts and chunks. The errors wrap
// [ErrFormat].
func (m *Manifest) check() error {
	if m.Format != Format {
		if m.Format > Format {
			return fmt.Errorf("format %d: this edgelink reads format %d only; upgrade it: %w", m.Format, Format, ErrFormat)
		}
		return fmt.Errorf("format %d: not a bundle format: %w", m.Format, ErrFormat)
	}
	if _, err := m.checkHeader(); err != nil {
		return fmt.Errorf("%w: %w", err, ErrFormat)
	}
	if !isHex(m.ID, 16) {
		return fmt.Errorf("id %q: want 32 hex digits: %w", m.ID, ErrFormat)
	}
	if m.Compression != Compression {
		return fmt.Errorf("compression %q: want %q: %w", m.Compression, Compression, ErrFormat)
	}
	if m.Encrypted != (m.Recipients > 0) || m.Recipients < 0 {
		return fmt.Errorf("encrypted %t to %d recipients: %w", m.Encrypted, m.Recipients, ErrFormat)
	}
	var records, bytes int64
	for _, r := range m.Ranges {
		if r.Records < 0 || r.Records > r.To-r.From || r.Bytes < 0 || (r.Records == 0 && r.Bytes != 0) {
			return fmt.Errorf("range %s/%d: %d records of %d bytes in [%d, %d): %w", r.Topic, r.Partition, r.Records, r.Bytes, r.From, r.To, ErrFormat)
		}
		records += r.Records
		bytes = addCapped(bytes, r.Bytes)
	}
	if records != m.Records || bytes != m.Bytes {
		return fmt.Errorf("%d records of %d bytes, the ranges hold %d of %d bytes: %w", m.Records, m.Bytes, records, bytes, ErrFormat)
	}
	records = 0
	for i, c := range m.Chunks {
		if want := chunkName(i + 1); c.File != want {
			return fmt.Errorf("chunk %d is %q, want %q: %w", i+1, c.File, want, ErrFormat)
		}
		if c.Bytes <= 0 || c.Records <= 0 || !isHex(c.SHA256, sha256.Size) {
			return fmt.Errorf("chunk %s: %d records, %d bytes, SHA-256 %q: %w", c.File, c.Records, c.Bytes, c.SHA256, ErrFormat)
		}
		records += c.Records
	}
	if records != m.Records {
		return fmt.Errorf("%d records, the chunks hold %d: %w", m.Records, records, ErrFormat)
	}
	return nil
}

// addCapped adds non-negative counts without overflowing.
func addCapped(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// chunkName returns the file name of chunk n, counted from 1.
func chunkName(n int) string { return fmt.Sprintf("chunk-%06d.elb", n) }

// isHex reports whether s is the lowercase hex encoding of n bytes.
func isHex(s string, n int) bool {
	if len(s) != 2*n {
		return false
	}
	return !slices.ContainsFunc([]byte(s), func(c byte) bool {
		return (c < '0' || c > '9') && (c < 'a' || c > 'f')
	})
}

// millis returns t as Kafka keeps it, and fromMillis turns it back into a
// time, in UTC.
func millis(t time.Time) int64 { return t.UnixMilli() }

func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }
