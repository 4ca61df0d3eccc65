package membership

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// protocolType is the group's protocol type, as "consumer" is a consumer
// group's and "connect" a Kafka Connect cluster's.
const protocolType = "edgelink"

// protocolName is the one protocol a member offers: members that disagree on
// the number of slots cannot be in the group together.
func protocolName(slots int) string { return "slots-" + strconv.Itoa(slots) }

// wireVersion is the version of the metadata and assignment JSON. A newer
// version may add fields; it must keep the meaning of these.
const wireVersion = 1

// metadata is what a member says about itself in JoinGroup.
type metadata struct {
	Version    int    `json:"v"`
	Member     Member `json:"member"`
	Owned      []int  `json:"owned,omitempty"`
	Generation int32  `json:"generation"` // of the assignment that gave Owned
}

// assignment is what the leader sends every member in SyncGroup: the whole
// table, so that every member knows the View.
type assignment struct {
	Version int              `json:"v"`
	Leader  int              `json:"leader"` // index into Members
	Members []assignedMember `json:"members"`
	Owners  []int            `json:"owners"` // slot → index into Members, -1: nobody
}

type assignedMember struct {
	ID string `json:"id"` // group member id
	Member
}

// decodeClaims reads the members' metadata from a JoinGroup response; a
// member whose metadata cannot be read is taken to own nothing.
func decodeClaims(members []kmsg.JoinGroupResponseMember) []claim {
	out := make([]claim, 0, len(members))
	for _, jm := range members {
		c := claim{id: jm.MemberID}
		var md metadata
		if err := json.Unmarshal(jm.ProtocolMetadata, &md); err == nil {
			c.member, c.owned, c.generation = md.Member, md.Owned, md.Generation
		}
		if c.member.Instance == "" {
			c.member.Instance = jm.MemberID
		}
		out = append(out, c)
	}
	return out
}

// encodeAssignment turns the leader's plan into the bytes every member gets.
func encodeAssignment(p plan, leaderID string) ([]byte, error) {
	a := assignment{Version: wireVersion, Leader: -1, Owners: p.owners}
	for i, c := range p.members {
		a.Members = append(a.Members, assignedMember{ID: c.id, Member: c.member})
		if c.id == leaderID {
			a.Leader = i
		}
	}
	b, err := json.Marshal(a)
	if err != nil {
		return nil, fmt.Errorf("encode assignment: %w", err)
	}
	return b, nil
}

// decodeAssignment reads a SyncGroup assignment: the View of generation gen
// and the slots of the member with group member id self.
func decodeAssignment(b []byte, slots int, gen int32, self string) (View, []int, error) {
	var a assignment
	if err := json.Unmarshal(b, &a); err != nil {
		return View{}, nil, fmt.Errorf("decode assignment of %d bytes: %w", len(b), err)
	}
	if len(a.Owners) != slots {
		return View{}, nil, fmt.Errorf("decode assignment: %d owners for %d slots", len(a.Owners), slots)
	}
	v := View{Generation: gen, Owners: make([]Member, slots)}
	for _, m := range a.Members {
		v.Members = append(v.Members, m.Member)
	}
	slices.SortStableFunc(v.Members, func(x, y Member) int { return cmp.Compare(x.Instance, y.Instance) })
	if a.Leader >= 0 && a.Leader < len(a.Members) {
		v.Leader = a.Members[a.Leader].Instance
	}
	var mine []int
	for s, o := range a.Owners {
		if o < 0 {
			continue
		}
		if o >= len(a.Members) {
			return View{}, nil, fmt.Errorf("decode assignment: slot %d owned by member %d of %d", s, o, len(a.Members))
		}
		v.Owners[s] = a.Members[o].Member
		if a.Members[o].ID == self {
			mine = append(mine, s)
		}
	}
	return v, mine, nil
}

// Errors that end a generation for reasons of our own.
var (
	// errRejoin: this member revoked slots, or the coordinator started a
	// rebalance; rejoin at once, keeping what it owns.
	errRejoin = errors.New("rejoin")
	// errSessionExpired: the coordinator has not answered for as long as
	// the session lasts; it has presumably expired this member.
	errSessionExpired = errors.New("no answer from the group coordinator for the session timeout")
)

// action is what the member does after an error ends a generation.
type action int

const (
	// rejoin at once, keeping the slots owned.
	actRejoin action = iota
	// back off and rejoin, keeping the slots owned until the session expires.
	actRetry
	// the membership is gone (or presumably so): revoke everything (lost)
	// and rejoin with a new member id.
	actLose
	// the group refused this member's protocol: back off and try again.
	actRefused
	// retrying cannot help: return the error.
	actFatal
)

// classify decides, in one place, what an error means for the membership.
func classify(err error) action {
	switch {
	case errors.Is(err, errRejoin), errors.Is(err, kerr.RebalanceInProgress):
		return actRejoin
	case errors.Is(err, errSessionExpired), errors.Is(err, kerr.UnknownMemberID),
		errors.Is(err, kerr.IllegalGeneration), errors.Is(err, kerr.FencedInstanceID):
		return actLose
	case errors.Is(err, kerr.InconsistentGroupProtocol):
		return actRefused
	case errors.Is(err, kerr.GroupAuthorizationFailed), errors.Is(err, kerr.InvalidSessionTimeout),
		errors.Is(err, kerr.InvalidGroupID), errors.Is(err, kerr.UnsupportedVersion),
		errors.Is(err, kgo.ErrClientClosed):
		return actFatal
	}
	// Coordinator moves and loads (kgo already retried them), network
	// errors, timeouts, a full group, an unreadable assignment.
	return actRetry
}

// explain adds what an operator needs to fix a fatal error.
func explain(err error, cfg Config) error {
	switch {
	case errors.Is(err, kerr.GroupAuthorizationFailed):
		return fmt.Errorf("%w: the principal needs READ on group %q (and DESCRIBE on it for status)", err, cfg.Group)
	case errors.Is(err, kerr.InvalidSessionTimeout):
		return fmt.Errorf("%w: session timeout %s is outside the broker's group.min.session.timeout.ms .. group.max.session.timeout.ms (6s .. 30m by default)", err, cfg.SessionTimeout)
	}
	return err
}

// describeProtocol says which protocol the group's members use, for the
// message when the group refuses this member.
func describeProtocol(ctx context.Context, cl *kgo.Client, group string) string {
	req := kmsg.NewPtrDescribeGroupsRequest()
	req.Groups = []string{group}
	resp, err := req.RequestWith(ctx, cl)
	if err == nil && len(resp.Groups) == 1 {
		err = kerr.ErrorForCode(resp.Groups[0].ErrorCode)
	}
	if err != nil {
		return fmt.Sprintf("unknown (describe group: %v)", err)
	}
	g := resp.Groups[0]
	if g.ProtocolType != protocolType {
		return fmt.Sprintf("protocol type %q", g.ProtocolType)
	}
	return g.Protocol
}
