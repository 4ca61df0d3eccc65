// Package observe serves what an operator needs to see a running agent, and
// the fleet service's view of many: a page, a JSON API, Prometheus metrics
// and health checks, on one HTTP server (loopback by default). The agent's
// Server renders a status.Model and the FleetServer a fleet.View, which
// their callers create and run; neither keeps state of its own about what
// it shows. Both share the listener, TLS, bearer token, probes and
// shutdown.
//
// The agent's routes:
//
//	GET  /                                  status page (HTML; polls the status API every second)
//	GET  /api/v1/status                     links, counters, backlog, topics, recent events (JSON)
//	GET  /api/v1/links/{link}/translate     source offset → mirror offset (?topic=&partition=&offset=)
//	POST /api/v1/links/{link}/cut           only with a Control (the demo): cut the link's network
//	POST /api/v1/links/{link}/restore       only with a Control (the demo): restore it
//	POST /api/v1/links/{link}/kill-agent    only with an AgentControl (the demo): kill the agent sharing the link with this one
//	POST /api/v1/links/{link}/start-agent   only with an AgentControl (the demo): start that agent again
//	GET  /metrics                           Prometheus metrics
//	GET  /healthz                           200 while the process serves
//	GET  /readyz                            200 when ready (see status.Model.Ready), 503 otherwise
//
// With a bearer token configured, everything except /healthz, /readyz and
// the page's static files requires "Authorization: Bearer <token>". The page
// itself asks for the token once and keeps it in the browser tab's
// sessionStorage. The control actions (POST) also refuse cross-origin
// requests.
//
// The status API's body is the model's snapshot plus the state of the
// controls the server has: "controls" and, per link, "link_cut" with a
// Control, "agent_killed" with an AgentControl. The page shows the buttons
// of the controls that exist, and, per link, the agents sharing it (the
// snapshot's sharing): each agent with its slots and partitions, and the
// slots in motion.
//
// The FleetServer's routes are listed on its type.
package observe

import (
	"context"
	"errors"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/link"
	"github.com/edgelink/edgelink/internal/status"
)

// Control is what the status page's control actions do; the demo provides
// one that cuts and restores the simulated network of a link.
type Control interface {
	// Cut makes the named link's network a black hole.
	Cut(link string) error
	// Restore undoes Cut.
	Restore(link string) error
	// IsCut reports whether the named link's network is cut.
	IsCut(link string) bool
}

// AgentControl is what the status page's agent actions do; the demo, which
// runs a second agent sharing its link, provides one that kills that agent
// and starts it again, to show the survivor taking its slots over.
type AgentControl interface {
	// KillAgent kills the other agent sharing the named link as if its
	// process died (no last commit, no goodbye to the group), and returns
	// once it stopped. Killing a killed agent does nothing.
	KillAgent(link string) error
	// StartAgent starts a fresh agent in place of the killed one; it
	// rejoins the link's group and gets its share of the slots back.
	// Starting a running agent does nothing.
	StartAgent(link string) error
	// AgentKilled reports whether the other agent of the named link is
	// killed.
	AgentKilled(link string) bool
}

// ErrUnknownLink is returned by a Control or an AgentControl for a link it
// does not know.
var ErrUnknownLink = errors.New("unknown link")

// Options configure a Server.
type Options struct {
	// HTTP is the listen address, TLS and token.
	HTTP config.HTTP
	// Status is the model the server renders: the links, their status and
	// the agent's readiness and version. Its owner runs it; nil shows no
	// links.
	Status *status.Model
	// Control, when set, adds the cut and restore actions.
	Control Control
	// AgentControl, when set, adds the kill-agent and start-agent actions.
	AgentControl AgentControl
	// Fleet, when set, returns the state of the agent's connection to the
	// fleet (fleet.UplinkState), shown as "fleet" in the status API and
	// on the page.
	Fleet func() any
	// FleetURL, when set, is the address of a fleet page the status page
	// links to (the demo runs one).
	FleetURL string
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
}

// Server is the agent's HTTP server. Create it with Listen, run it with
// Run.
type Server struct {
	*httpServer
	opts     Options
	registry *prometheus.Registry
	model    *status.Model
}

// Listen validates opts (reading the token file and the TLS key pair) and
// binds the listen address, so that Addr is known before Run.
func Listen(ctx context.Context, opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Status == nil {
		opts.Status = status.New(status.Options{})
	}
	h, err := newHTTPServer(ctx, opts.HTTP, opts.Logger)
	if err != nil {
		return nil, err
	}
	s := &Server{httpServer: h, opts: opts, model: opts.Status}
	s.registry = newRegistry(collector{s})
	h.setHandler(s.routes())
	return s, nil
}

// Snapshot returns the model's snapshot as the page renders it: with the
// state of the cut and restore controls, when the server has them.
func (s *Server) Snapshot() status.Snapshot {
	snap := s.model.Snapshot()
	if c := s.opts.Control; c != nil {
		snap.Controls = true
		for i := range snap.Links {
			cut := c.IsCut(snap.Links[i].Name)
			snap.Links[i].LinkCut = &cut
		}
	}
	return snap
}

// StatusResponse is the body of GET /api/v1/status: the snapshot, with the
// state of the controls the server has. It decodes into a status.Snapshot
// too, which leaves the agent actions' state out.
type StatusResponse struct {
	status.Snapshot
	Links []LinkResponse `json:"links"`
	// Fleet is the agent's connection to the fleet; absent without a
	// fleet block.
	Fleet any `json:"fleet,omitempty"`
	// FleetURL is the fleet page's address, when the server knows one.
	FleetURL string `json:"fleet_url,omitempty"`
}

// LinkResponse is one link of a StatusResponse.
type LinkResponse struct {
	status.LinkStatus
	// AgentKilled is present only with an AgentControl (the demo):
	// whether the other agent sharing the link is killed.
	AgentKilled *bool `json:"agent_killed,omitempty"`
}

// Status returns what GET /api/v1/status answers.
func (s *Server) Status() StatusResponse {
	snap := s.Snapshot()
	out := StatusResponse{Snapshot: snap, Links: make([]LinkResponse, len(snap.Links)), FleetURL: s.opts.FleetURL}
	out.Snapshot.Links = nil
	if s.opts.Fleet != nil {
		out.Fleet = s.opts.Fleet()
	}
	for i, l := range snap.Links {
		out.Links[i] = LinkResponse{LinkStatus: l}
		if ac := s.opts.AgentControl; ac != nil {
			killed := ac.AgentKilled(l.Name)
			out.Links[i].AgentKilled = &killed
		}
	}
	return out
}

// findLink returns the link called name among links, or nil.
func findLink(links []*link.Link, name string) *link.Link {
	for _, l := range links {
		if l.Name() == name {
			return l
		}
	}
	return nil
}
