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

// TransactionalID is the transactional id of the link's destination
// producer: "edgelink-<identity>-0". Every instance of the same link shares
// it, so that a new instance fences an older one; links of other sites
// never share it.
func (id Identity) TransactionalID() string { return "edgelink-" + id.String() + "-0" }

// keyPrefix starts every key the link writes to the checkpoint topic.
func (id Identity) keyPrefix() string { return id.String() + "/" }

// checkpointKey is "<identity>/<source topic>/<partition>".
func (id Identity) checkpointKey(t tp) []byte {
	return []byte(id.keyPrefix() + t.Topic + "/" + strconv.Itoa(int(t.Partition)))
}

// ownerKey is "<identity>/owner".
func (id Identity) ownerKey() []byte { return []byte(id.keyPrefix() + "owner") }

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

// TransactionalID returns the transactional id of the destination producer
// of the link named name at site (see Identity).
func TransactionalID(site, name string) string { return Identity{site, name}.TransactionalID() }
