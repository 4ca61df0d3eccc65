package membership

import (
	"cmp"
	"slices"
)

// claim is one member as the leader sees it in a JoinGroup response: its
// group member id, who it is, and the slots it says it owns.
type claim struct {
	id         string // group member id, unique in the group
	member     Member
	owned      []int
	generation int32 // generation of the assignment that gave it owned
}

// plan is the leader's assignment for one generation.
type plan struct {
	members []claim // sorted by instance, then member id
	owners  []int   // slot → index into members; -1: nobody (moving)
}

// assign computes a balanced, sticky, cooperative assignment of n slots:
//
//   - a slot claimed by two members stays with the one whose claim is of the
//     higher generation (ties: the lower instance), the other must revoke it;
//   - every member targets floor(n/M) or ceil(n/M) slots, the ceil going to
//     those that own the most now, so that as few slots as possible move;
//   - a member over its target keeps its lowest slots and gives up the others,
//     which go to nobody in this generation: the next generation, after the
//     owner revoked them and rejoined, hands them out;
//   - slots nobody claims (new, or of members that are gone) go at once to the
//     members under their target, in instance order.
//
// The result depends only on n and the set of claims, not on their order.
func assign(n int, in []claim) plan {
	members := slices.Clone(in)
	slices.SortFunc(members, func(a, b claim) int {
		return cmp.Or(cmp.Compare(a.member.Instance, b.member.Instance), cmp.Compare(a.id, b.id))
	})
	p := plan{members: members, owners: make([]int, n)}
	for s := range p.owners {
		p.owners[s] = -1
	}
	if len(members) == 0 {
		return p
	}
	// Resolve claims; members are in instance order, so on equal
	// generations the first (lowest) instance keeps the slot.
	for i, m := range members {
		for _, s := range m.owned {
			if s < 0 || s >= n {
				continue
			}
			if o := p.owners[s]; o < 0 || m.generation > members[o].generation {
				p.owners[s] = i
			}
		}
	}
	held := make([][]int, len(members))
	for s, o := range p.owners {
		if o >= 0 {
			held[o] = append(held[o], s)
		}
	}
	order := make([]int, len(members))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(len(held[b]), len(held[a])) })
	target := make([]int, len(members))
	base, extra := n/len(members), n%len(members)
	for rank, i := range order {
		target[i] = base
		if rank < extra {
			target[i]++
		}
	}
	moving := make([]bool, n)
	for i := range members {
		for len(held[i]) > target[i] {
			s := held[i][len(held[i])-1]
			held[i] = held[i][:len(held[i])-1]
			p.owners[s] = -1
			moving[s] = true
		}
	}
	next := 0
	for s := range n {
		if p.owners[s] >= 0 || moving[s] {
			continue
		}
		for next < len(members) && len(held[next]) >= target[next] {
			next++
		}
		if next == len(members) {
			break // cannot happen: the targets add up to n
		}
		p.owners[s] = next
		held[next] = append(held[next], s)
	}
	return p
}

// slotsOf returns the slots the plan gives to the member with group member id id.
func (p plan) slotsOf(id string) []int {
	var out []int
	for s, o := range p.owners {
		if o >= 0 && p.members[o].id == id {
			out = append(out, s)
		}
	}
	return out
}
