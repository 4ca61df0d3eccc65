// Package observe serves what an operator needs to see a running agent: the
// status page, the status API, Prometheus metrics and health checks, on one
// HTTP server (loopback by default). It renders a status.Model, which its
// caller creates and runs; it keeps no state of its own about the links.
//
// Routes:
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
package observe

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

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
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
}

// shutdownTimeout bounds the graceful shutdown of the HTTP server.
const shutdownTimeout = 5 * time.Second

// Server is the HTTP server. Create it with Listen, run it with Run.
type Server struct {
	opts     Options
	logger   *slog.Logger
	token    string
	ln       net.Listener
	scheme   string
	srv      *http.Server
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
	if opts.HTTP.Listen == "" {
		opts.HTTP.Listen = config.DefaultHTTPListen
	}
	s := &Server{
		opts:   opts,
		logger: opts.Logger.With("component", "http"),
		token:  opts.HTTP.Token,
		scheme: "http",
		model:  opts.Status,
	}
	if opts.HTTP.TokenFile != "" {
		b, err := os.ReadFile(opts.HTTP.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("read http.token_file: %w", err)
		}
		s.token = strings.TrimSpace(string(b))
		if s.token == "" {
			return nil, fmt.Errorf("http.token_file %s is empty: write the token into it", opts.HTTP.TokenFile)
		}
	}
	var tlsCfg *tls.Config
	if t := opts.HTTP.TLS; t != nil {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load http.tls certificate %s and key %s: %w", t.CertFile, t.KeyFile, err)
		}
		tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
		s.scheme = "https"
	}
	s.registry = newRegistry(s)
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", opts.HTTP.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s (http.listen): %w", opts.HTTP.Listen, err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	s.ln = ln
	s.srv = &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// URL returns the status page's URL; an unspecified host (":9644") is
// shown as 127.0.0.1.
func (s *Server) URL() string {
	host, port, _ := net.SplitHostPort(s.ln.Addr().String())
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return s.scheme + "://" + net.JoinHostPort(host, port) + "/"
}

// TokenRequired reports whether the API requires a bearer token.
func (s *Server) TokenRequired() bool { return s.token != "" }

// Run serves until ctx ends, then shuts the server down gracefully
// (bounded by 5 s).
func (s *Server) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	errc := make(chan error, 1)
	wg.Go(func() { errc <- s.srv.Serve(s.ln) })
	s.logger.Info("http server listening", "url", s.URL(), "token", s.TokenRequired())
	select {
	case err := <-errc:
		return fmt.Errorf("serve http: %w", err)
	case <-ctx.Done():
	}
	shutCtx, stop := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer stop()
	err := s.srv.Shutdown(shutCtx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return fmt.Errorf("serve http: %w", serr)
	}
	if err != nil {
		_ = s.srv.Close()
		return fmt.Errorf("shut down http server: %w", err)
	}
	return nil
}

// Close releases the listen address of a server that never ran; Run
// releases it itself.
func (s *Server) Close() error {
	if err := s.ln.Close(); err != nil {
		return fmt.Errorf("close http listener: %w", err)
	}
	return nil
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
	out := StatusResponse{Snapshot: snap, Links: make([]LinkResponse, len(snap.Links))}
	out.Snapshot.Links = nil
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
