// Package diode carries Kafka records one way over UDP, through a
// unidirectional gateway (a data diode) where nothing ever comes back.
//
// At the site a [Sender] takes batches of a link's source records and sends
// them as sealed datagrams at a configured rate; in the cloud a [Receiver]
// authenticates and reassembles them into batches, and an [Assembler] puts
// each partition's batches back in offset order from the destination's
// position, so that the destination is written exactly once with
// contiguous offsets. No acknowledgement is possible, so loss is healed
// forward: Reed-Solomon parity over groups of datagrams repairs scattered
// loss, timed repetition of every datagram repairs bursts longer than the
// parity can, and what neither repaired becomes an exact [Gap] the engine
// records. Heartbeats tell the receiver the source's topics, how far the
// sender sent each partition (so that a lost tail is noticed too) and how
// long repairs may take.
//
// Wire format. Every datagram is a 28-byte clear header (magic "ED",
// version 1, kind, the sender's 16-byte random session id, a 64-bit
// sequence number), authenticated as additional data, followed by a payload
// sealed with XChaCha20-Poly1305 under the shared [Key], its nonce the
// session id and the sequence number, so that no nonce repeats for a key. A
// datagram that fails authentication is dropped and counted. The plaintext
// of a data or heartbeat datagram is a 12-byte group header (FEC group id,
// index, group shape) and one fragment of a message (message id, fragment
// index and count, length); a message is an encoded [Batch] or
// [Heartbeat]. A parity datagram carries one Reed-Solomon parity shard of
// a group of consecutive data datagrams (their fragments, zero-padded to
// the longest) and the group's shape. Every datagram is self-describing,
// so a receiver can start mid-stream, and the ids of groups and messages
// let it drop what it had already.
//
// Repetition. Each data and parity datagram is kept, sealed, in a buffer of
// bounded size and sent again, byte for byte, after each of the configured
// delays, counted from its first transmission (later when the rate is
// taken by other traffic: the heartbeats tell this lag). Heartbeat
// datagrams are neither in FEC groups nor repeated: a newer heartbeat
// follows every second.
package diode

import (
	"encoding/hex"
	"errors"
	"time"
)

// Header is one record header.
type Header struct {
	Key   string
	Value []byte
}

// Record is one Kafka record. A nil Key or Value is distinct from an empty
// one; a nil Value is a tombstone.
type Record struct {
	Offset int64
	// Timestamp travels with millisecond precision.
	Timestamp  time.Time
	Key, Value []byte
	Headers    []Header
}

// Batch is a run of one partition's records. It accounts for the source
// offsets [From, To): its records have offsets in that range, in increasing
// order, and offsets without a record (aborted transactions, markers,
// filtered records) are simply absent. Consecutive batches of a partition
// satisfy next.From == prev.To.
type Batch struct {
	Topic     string
	Partition int32
	From, To  int64
	Records   []Record
}

// size is about how many bytes b holds, for memory bounds.
func (b *Batch) size() int64 {
	n := int64(64 + len(b.Topic))
	for i := range b.Records {
		r := &b.Records[i]
		n += int64(48 + len(r.Key) + len(r.Value))
		for _, h := range r.Headers {
			n += int64(32 + len(h.Key) + len(h.Value))
		}
	}
	return n
}

// TopicPartition names one partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// Topic describes a source topic in a [Heartbeat].
type Topic struct {
	Name       string
	ID         string
	Partitions int32
	Config     map[string]string
}

// RedundancyInfo is what a sender repeats, as told in its heartbeats, so
// that a receiver knows how long to wait for repairs.
type RedundancyInfo struct {
	// Data and Parity are the FEC group: Parity parity datagrams per Data
	// data datagrams; 0 when there is no FEC.
	Data, Parity int
	// Repeat are the delays after which every datagram is sent again.
	Repeat []time.Duration
	// Lag is how late the sender's repetitions ran when it said so: they
	// wait for the rate behind other traffic.
	Lag time.Duration
}

// repairSlack is what a repair may arrive later than its repeat delay:
// pacing behind other traffic, the FEC flush, the network.
const repairSlack = 2 * time.Second

// RepairWindow is how long a receiver waits for a missing range to be
// repaired before it declares it lost: the longest repeat delay and a
// quarter more, plus the lag of the repetitions, plus two seconds.
func (r RedundancyInfo) RepairWindow() time.Duration {
	var longest time.Duration
	for _, d := range r.Repeat {
		longest = max(longest, d)
	}
	return longest + longest/4 + max(r.Lag, 0) + repairSlack
}

// Heartbeat tells the receiver what the sender knows: the source topics and
// how far the sender has sent each partition. A sender sends one every
// second (by default) and whenever it is given a new one.
type Heartbeat struct {
	SourceCluster string
	Site, Link    string
	Topics        []Topic
	// Positions are, per partition, the next offset the sender has sent:
	// the end of what it sent. A sender raises them to the end of every
	// batch it sent.
	Positions map[TopicPartition]int64
	// Origins are, per partition of Positions, the offset the sender
	// started the partition at when the link began (not since its last
	// restart): a receiver that holds nothing of a partition expects it
	// from there, and reports what it never heard of as missing.
	Origins map[TopicPartition]int64
	// Sent is when the heartbeat was sent; SenderStart when the sender
	// started. Both are set by the sender.
	Sent, SenderStart time.Time
	// Repeat is the sender's redundancy, set by the sender.
	Repeat RedundancyInfo
	// Session is the sending session, set by the receiver.
	Session SessionID
}

// SessionID identifies one run of a sender: 16 random bytes chosen when it
// starts.
type SessionID [16]byte

// String returns the id in hex.
func (id SessionID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether id is the zero id (no session).
func (id SessionID) IsZero() bool { return id == SessionID{} }

// Errors of the package.
var (
	// ErrClosed is returned by a Sender's methods after Close.
	ErrClosed = errors.New("diode: sender closed")
	// ErrInvalidBatch is returned by Send for a batch that breaks its
	// contract (no topic, To before From, offsets out of range or order).
	ErrInvalidBatch = errors.New("diode: invalid batch")
	// ErrTooLarge is returned by Send and Heartbeat for a message above
	// [MaxMessage].
	ErrTooLarge = errors.New("diode: message too large")
)
