package transform

// Stateful transforms: downsample, dedupe and aggregate keep state per
// source partition, fed the partition's records in offset order.
//
// # Exactly once without a local store
//
// Their state is never saved. A link saves, with each checkpoint of a
// partition, where replaying the source rebuilds the state it had there
// (Rebuild): the offset of the oldest record that still matters (the first
// record of the oldest open window, interval or horizon) and the
// watermark just before it. After a crash the link starts a new
// PartitionState, Restores that watermark, and replays the source from that
// offset up to the checkpoint, discarding what the replay emits (it was
// emitted and committed before); from the checkpoint on, the state and so
// the output are what an uninterrupted run has. This holds because every
// decision depends only on the watermark (the largest timestamp seen,
// which evolves the same in the replay) and on state entries created by
// records at or after the rebuild offset:
//
//   - aggregate: a window [start, end) takes the records whose timestamp
//     falls in it until the watermark reaches end + grace, when it is
//     emitted and forgotten; a record of a window already closed is late.
//   - downsample: the first record of each key and interval [n*every,
//     (n+1)*every) is kept; a record whose interval ended a whole interval
//     or more before the watermark (end + every <= watermark) is late.
//   - dedupe: a record is dropped when a record of its key was seen
//     (kept or not) with a timestamp no more than horizon before or after
//     its own; a record more than horizon older than the watermark is late.
//
// Late records are neither kept nor taken into state; the caller counts
// them (and may send them to a late topic).

import "time"

// NoWatermark is the watermark of a partition that has seen no record.
const NoWatermark int64 = -1 << 63

// Position is where replaying a partition rebuilds a state: from Offset,
// with the watermark it had just before that record.
type Position struct {
	Offset int64
	// Watermark is in Unix milliseconds (NoWatermark when none).
	Watermark int64
}

// Output is a record a stateful transform emits (an aggregate's window).
type Output struct {
	Key, Value []byte
	Timestamp  time.Time
}

// Result is what a stateful transform made of one record.
type Result struct {
	// Keep passes the record on (downsample, dedupe; never aggregate).
	Keep bool
	// Late reports a record that came after its window, interval or
	// horizon was left behind: not kept, not in the state.
	Late bool
	// Emit holds the records to emit after this one (windows this record
	// closed), in window start, then key order.
	Emit []Output
}

// Stateful is a compiled downsample, dedupe or aggregate.
type Stateful interface {
	// Partition returns a new, empty state for one source partition.
	Partition(partition int32) PartitionState
	// Kind is "downsample", "dedupe" or "aggregate".
	Kind() string
}

// PartitionState is a stateful transform's state of one source partition.
// It is not safe for concurrent use.
type PartitionState interface {
	// Process takes the partition's next record (offsets increase). An
	// error (the key or a value cannot be evaluated, a value is not a
	// number) leaves the state as it was: the record is the caller's to
	// handle (on_error). The expressions are evaluated first, so a record
	// that cannot be is an error even when it is late too.
	Process(r *Record) (Result, error)
	// Rebuild returns where replay must start to rebuild this state, the
	// state after the record before offset next: the oldest record still
	// in a live entry, or next itself (and the watermark now) when none.
	Rebuild(next int64) Position
	// Restore sets the watermark of a new state before a replay from p.
	Restore(p Position)
	// Size estimates the state's memory in bytes.
	Size() int64
}
