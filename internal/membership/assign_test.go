package membership

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// fresh returns m members that own nothing, named a, b, c, ...
func fresh(m int) []claim {
	out := make([]claim, m)
	for i := range out {
		name := string(rune('a' + i))
		out[i] = claim{id: "id-" + name, member: Member{Instance: name}, generation: -1}
	}
	return out
}

// round runs one generation: the plan's slots become what each member owns.
func round(n int, ms []claim, gen int32) ([]claim, plan) {
	p := assign(n, ms)
	out := make([]claim, len(ms))
	for i, c := range ms {
		c.owned, c.generation = p.slotsOf(c.id), gen
		out[i] = c
	}
	return out, p
}

// requireBalanced checks that every slot is owned and counts differ by at most one.
func requireBalanced(t *testing.T, n int, p plan) {
	t.Helper()
	counts := make([]int, len(p.members))
	for s, o := range p.owners {
		require.GreaterOrEqual(t, o, 0, "slot %d has no owner", s)
		counts[o]++
	}
	lo, hi := n/len(p.members), (n+len(p.members)-1)/len(p.members)
	for i, c := range counts {
		require.True(t, c >= lo && c <= hi, "member %s owns %d slots, want %d..%d", p.members[i].member.Instance, c, lo, hi)
	}
}

// requireCooperative checks that the plan gives no slot that one member
// claims to another, unless that other has the winning claim on it.
func requireCooperative(t *testing.T, n int, before []claim, p plan) {
	t.Helper()
	beats := func(a, b claim) bool {
		return a.generation > b.generation || a.generation == b.generation && a.member.Instance < b.member.Instance
	}
	for s := range n {
		o := p.owners[s]
		if o < 0 {
			continue
		}
		w := p.members[o]
		for _, c := range before {
			if c.id == w.id || !slices.Contains(c.owned, s) {
				continue
			}
			if !slices.Contains(w.owned, s) || beats(c, w) {
				require.Failf(t, "not cooperative", "slot %d given to %s while %s still owns it", s, w.member.Instance, c.member.Instance)
			}
		}
	}
}

func TestAssignBalanced(t *testing.T) {
	for _, n := range []int{1, 3, 8, 12} {
		for m := 1; m <= 5; m++ {
			t.Run(fmt.Sprintf("%d slots %d members", n, m), func(t *testing.T) {
				ms, p := round(n, fresh(m), 1)
				requireBalanced(t, n, p) // unowned slots go out at once
				// Take members away and add new ones: two rounds at most.
				if m > 1 {
					ms = ms[1:]
				}
				ms = append(ms, claim{id: "id-z", member: Member{Instance: "z"}, generation: -1})
				ms, _ = round(n, ms, 2)
				_, p = round(n, ms, 3)
				requireBalanced(t, n, p)
			})
		}
	}
}

func TestAssignJoinMovesMinimum(t *testing.T) {
	for _, n := range []int{3, 8, 12} {
		for m := 1; m <= 4; m++ {
			t.Run(fmt.Sprintf("%d slots %d+1 members", n, m), func(t *testing.T) {
				ms, start := round(n, fresh(m), 1)
				joiner := fresh(m + 1)[m]
				ms = append(ms, joiner)
				ms1, p1 := round(n, ms, 2)
				requireCooperative(t, n, ms, p1)
				// First round: nobody gets a slot someone owns; what moves
				// is unowned.
				for s, o := range p1.owners {
					if o >= 0 {
						require.Equal(t, start.members[start.owners[s]].id, p1.members[o].id, "slot %d changed owner in one round", s)
					}
				}
				_, p2 := round(n, ms1, 3)
				requireBalanced(t, n, p2)
				moved := 0
				for s, o := range p2.owners {
					if p2.members[o].id != start.members[start.owners[s]].id {
						moved++
						require.Equal(t, joiner.id, p2.members[o].id, "slot %d moved to an old member", s)
						require.Equal(t, -1, p1.owners[s], "slot %d moved without a round with no owner", s)
					}
				}
				require.Equal(t, n/(m+1), moved, "the joiner takes only its share")
			})
		}
	}
}

func TestAssignDeadMemberSlotsGoAtOnce(t *testing.T) {
	ms, before := round(12, fresh(3), 1)
	_, p := round(12, ms[:2], 2) // c is gone
	requireBalanced(t, 12, p)
	for s, o := range before.owners {
		if before.members[o].member.Instance != "c" {
			require.Equal(t, before.members[o].id, p.members[p.owners[s]].id, "slot %d of a live member moved", s)
		}
	}
}

func TestAssignDoubleClaim(t *testing.T) {
	for _, tc := range []struct {
		name       string
		genA, genB int32
		want       string
	}{
		{"higher generation wins", 5, 7, "b"},
		{"higher generation wins either way", 7, 5, "a"},
		{"tie goes to the lower instance", 6, 6, "a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ms := fresh(2)
			ms[0].owned, ms[0].generation = []int{0, 1}, tc.genA
			ms[1].owned, ms[1].generation = []int{1, 2}, tc.genB
			p := assign(4, ms)
			require.Equal(t, tc.want, p.members[p.owners[1]].member.Instance)
			requireCooperative(t, 4, ms, p)
			require.Equal(t, "a", p.members[p.owners[0]].member.Instance)
			require.Equal(t, "b", p.members[p.owners[2]].member.Instance)
		})
	}
}

func TestAssignDeterministic(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		n, m := 1+r.IntN(16), 1+r.IntN(6)
		ms := fresh(m)
		for i := range ms {
			ms[i].generation = int32(r.IntN(3))
			for s := range n {
				if r.IntN(m+1) == 0 {
					ms[i].owned = append(ms[i].owned, s)
				}
			}
		}
		want := assign(n, ms)
		requireCooperative(t, n, ms, want)
		for range 5 {
			shuffled := slices.Clone(ms)
			r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			require.Equal(t, want, assign(n, shuffled))
		}
		// Whatever the start, two more rounds balance it.
		ms, _ = round(n, ms, 10)
		_, p := round(n, ms, 11)
		requireBalanced(t, n, p)
	}
}
