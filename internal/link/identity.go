package link

import (
	"hash/fnv"
	"strconv"
)

// Identity names a link wherever it leaves a trace in a cluster that other
// sites share: its transactional id, its checkpoint and ownership keys, its
// skipped-record entries. A fleet runs the same link names at hundreds of
// sites into one cloud, so the link name alone is not enough: the identity
// is (site, link name).
//
// A configuration without a site has the identity of the link name alone,
// which is what every trace was named by before sites were part of it; two
// such agents with the same link name into one cluster are the same link
// (the newer one fences the older one).
type Identity struct {
	Site, Link string
}

// String is "site:link", or "link" without a site. Neither a site nor a
// link name may contain ":" or "/", so the form is unambiguous.
func (id Identity) String() string {
	if id.Site == "" {
		return id.Link
	}
	return id.Site + ":" + id.Link
}

// TransactionalID is the transactional id of the destination producer of
// one slot of the link: "edgelink-<identity>-<slot>". Whoever opens a slot
// initialises its producer and so fences whoever held the slot before (an
// agent that lost it but still reaches the destination); links of other
// sites never share it. Slot 0's id is the one producer id of releases
// before slots, so an upgraded link settles what its predecessor left open.
func (id Identity) TransactionalID(slot int) string {
	return id.TransactionalIDPrefix() + strconv.Itoa(slot)
}

// TransactionalIDPrefix starts the transactional id of every slot of the
// link (an ACL on this prefix covers them all).
func (id Identity) TransactionalIDPrefix() string { return "edgelink-" + id.String() + "-" }

// GroupID is the consumer group, on the link's source cluster, through
// which the agents running the link share its slots: "edgelink-<identity>".
func (id Identity) GroupID() string { return "edgelink-" + id.String() }

// keyPrefix starts every key the link writes to the checkpoint topic.
func (id Identity) keyPrefix() string { return id.String() + "/" }

// checkpointKey is "<identity>/<source topic>/<partition>".
func (id Identity) checkpointKey(t tp) []byte {
	return []byte(id.keyPrefix() + t.Topic + "/" + strconv.Itoa(int(t.Partition)))
}

// failoverKey is "<identity>/failover": the mark edgelink failover leaves
// (see failoverMark). It has no partition number, so no checkpoint key is
// like it.
func (id Identity) failoverKey() []byte { return []byte(id.keyPrefix() + "failover") }

// slotKey is "<identity>/slot:<slot>": the marker a slot's first commit
// writes (see store). ":" is not legal in a topic name, so it cannot
// collide with a checkpoint key. (Earlier releases wrote
// "<identity>/slot/<slot>", the key of a checkpoint of a topic named
// "slot": see parseKey.)
func (id Identity) slotKey(slot int) []byte {
	return []byte(id.keyPrefix() + "slot:" + strconv.Itoa(slot))
}

// partitionOf returns the checkpoint topic partition (of n) that holds the
// link's keys: a hash of the identity, so that a fleet's links spread over
// the topic and a link reads only its own partition when it starts.
func (id Identity) partitionOf(n int32) int32 {
	if n <= 1 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(id.String())) // a hash never fails to write
	return int32(h.Sum32() % uint32(n))
}

// slotOf returns the slot (of n) that replicates partition k: the topic's
// partitions take consecutive slots from one its name hashes to, so that a
// topic's partitions spread evenly over the slots and the agents sharing
// them.
func slotOf(k tp, n int) int {
	if n <= 1 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(k.Topic)) // a hash never fails to write
	return int((uint64(h.Sum32()) + uint64(k.Partition)) % uint64(n))
}

// SlotOf returns the slot (of n) that replicates partition of topic.
func SlotOf(topic string, partition int32, n int) int { return slotOf(tp{topic, partition}, n) }
