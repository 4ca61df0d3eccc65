package link

import "time"

// SetProduceBuffer sets the producer's budget of unacknowledged payload.
func SetProduceBuffer(l *Link, bytes int) { l.buffer = bytes }

// TransactionalIDOf returns the transactional id of a slot of l.
func TransactionalIDOf(l *Link, slot int) string { return l.id.TransactionalID(slot) }

// CheckpointKeyOf returns the key of l's checkpoint of a source partition.
func CheckpointKeyOf(l *Link, topic string, partition int32) []byte {
	return l.id.checkpointKey(tp{topic, partition})
}

// ExplicitTxnVersions are the request versions of a slot's producer.
var ExplicitTxnVersions = explicitTxnVersions

// SetStuckFor sets how long an import waits for a topic it cannot write
// before it gives up, until the test ends.
func SetStuckFor(t interface{ Cleanup(func()) }, d time.Duration) {
	old := stuckFor
	stuckFor = d
	t.Cleanup(func() { stuckFor = old })
}
