package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/kafka"
	"github.com/edgelink/edgelink/internal/link"
	"github.com/edgelink/edgelink/internal/membership"
)

// Sharing a link: every agent started with the same configuration (same
// site) joins, for each link, the consumer group Identity.GroupID on the
// link's source cluster — local at the edge, so a WAN outage to the
// destination causes no rebalance — and runs the slots the group gives
// it. An agent that dies stops heartbeating; after the session timeout
// the group hands its slots to the others, whose new producers fence it
// at the destination should it still be writing there.

// newSelf identifies this agent process among those sharing its links.
func newSelf() link.Agent {
	b := make([]byte, 6)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	host, _ := os.Hostname()
	return link.Agent{Instance: hex.EncodeToString(b), Host: host, PID: os.Getpid()}
}

// share keeps r's link in its group until ctx ends, assigning and
// releasing the link's slots as the group decides. It returns once the
// member left the group (or, when crash is set, without leaving).
func (a *Agent) share(ctx context.Context, cfg *config.Config, lc *config.Link, opts link.Options, l *link.Link) {
	src := cfg.Clusters[lc.From]
	copts, err := kafka.ClientOptions(src, a.base, kafka.Dial{Raw: opts.SourceDialer, Timeout: 10 * time.Second})
	if err == nil {
		var cl *kgo.Client
		if cl, err = kgo.NewClient(copts...); err == nil {
			defer cl.Close()
			m := lc.Membership
			err = membership.Run(ctx, cl, membership.Config{
				Group: l.Identity().GroupID(), Slots: l.SlotCount(),
				Self:           membership.Member{Instance: a.self.Instance, Host: a.self.Host, PID: a.self.PID},
				SessionTimeout: m.SessionTimeout, HeartbeatInterval: m.HeartbeatInterval, RebalanceTimeout: m.RebalanceTimeout,
				Logger: a.base.With("link", lc.Name), CrashCause: link.ErrCrash,
			}, &slotHandler{l: l, self: a.self, release: m.RebalanceTimeout, logger: a.logger.With("link", lc.Name)})
		}
	}
	if err != nil && ctx.Err() == nil {
		l.Report(fmt.Errorf("share link %s through group %s on cluster %s: %w", lc.Name, l.Identity().GroupID(), lc.From, err))
	}
}

// slotHandler applies the group's decisions to a link.
type slotHandler struct {
	l       *link.Link
	self    link.Agent
	release time.Duration
	logger  *slog.Logger
	// since is when the current generation began; last the owners the
	// link saw before it, to tell takeovers from hand-overs.
	since time.Time
	last  []link.Agent
}

// Assigned implements membership.Handler.
func (h *slotHandler) Assigned(slots []int, v membership.View) {
	h.logger.Info("slots assigned", "slots", slots, "generation", v.Generation)
	h.l.Assign(slots...)
}

// Revoked implements membership.Handler: it returns once the link closed
// the slots (their last transaction committed or aborted), or after the
// rebalance timeout, when the next owner's producer fences whatever is
// left.
func (h *slotHandler) Revoked(slots []int, v membership.View, lost bool) {
	h.logger.Info("slots revoked", "slots", slots, "generation", v.Generation, "lost", lost)
	ctx, cancel := context.WithTimeout(context.Background(), h.release)
	defer cancel()
	release := h.l.Release
	if lost {
		release = h.l.ReleaseNow
	}
	if err := release(ctx, slots...); err != nil {
		h.logger.Warn("slots not released in time; their next owner fences them", "err", err)
	}
}

// Changed implements membership.Handler: the link's status shows the view,
// and its events say who joined, who left and which slots moved.
func (h *slotHandler) Changed(v membership.View, event string) {
	sh := link.Sharing{Generation: v.Generation, Self: h.self, Agents: agents(v.Members), Owners: agents(v.Owners)}
	var msg string
	switch event {
	case membership.EventGeneration:
		h.since = time.Now()
		msg = h.describe(sh)
		h.last = sh.Owners
	case membership.EventLost:
		msg = "this agent lost its membership of the link's group (no heartbeat answered within the session timeout); its slots were released and it is rejoining"
	case membership.EventRefused:
		msg = "the link's group refused this agent: the agents in it run the link with another number of slots; it joins once they are gone"
	}
	sh.Since = h.since
	h.l.SetSharing(sh, msg)
}

// describe says what a new generation changed: the agents sharing the
// link and the slots each one owns, and which slots moved from whom.
func (h *slotHandler) describe(sh link.Sharing) string {
	msg := fmt.Sprintf("generation %d: %d agent(s) share the link", sh.Generation, len(sh.Agents))
	for _, ag := range sh.Agents {
		var mine []int
		for i, o := range sh.Owners {
			if o.Instance == ag.Instance {
				mine = append(mine, i)
			}
		}
		msg += fmt.Sprintf("; %s slots %v", label(ag), mine)
	}
	present := make(map[string]bool, len(sh.Agents))
	for _, ag := range sh.Agents {
		present[ag.Instance] = true
	}
	var taken []string
	for i, was := range h.last {
		if i < len(sh.Owners) && was.Instance != "" && !present[was.Instance] && sh.Owners[i].Instance != "" {
			taken = append(taken, fmt.Sprintf("slot %d from %s to %s", i, label(was), label(sh.Owners[i])))
		}
	}
	if len(taken) > 0 {
		slices.Sort(taken)
		msg += "; taken over: " + fmt.Sprint(taken)
	}
	return msg
}

func label(ag link.Agent) string { return fmt.Sprintf("%s (%s pid %d)", ag.Instance, ag.Host, ag.PID) }

func agents(ms []membership.Member) []link.Agent {
	out := make([]link.Agent, len(ms))
	for i, m := range ms {
		out[i] = link.Agent{Instance: m.Instance, Host: m.Host, PID: m.PID}
	}
	return out
}
