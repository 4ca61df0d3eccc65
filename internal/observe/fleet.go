package observe

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/fleet"
)

// FleetOptions configure a FleetServer.
type FleetOptions struct {
	// HTTP is the listen address, TLS and token.
	HTTP config.HTTP
	// View is the fleet the server renders. Required. Its owner feeds it
	// (a fleet.Reader) and sweeps it every second (fleet.View.Sweep), so
	// that the page sees sites fall silent.
	View *fleet.View
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
}

// FleetServer is the fleet service's HTTP server (edgelink fleet serve),
// with the agent's conventions (listen address, TLS, bearer token, probes,
// metrics), rendering a fleet.View. Create it with ListenFleet, run it
// with Run (as the agent's Server).
//
// Routes:
//
//	GET  /                            fleet page (HTML; polls the fleet API every 2 s)
//	GET  /api/v1/fleet                summary and sites (fleet.Fleet); ?since=SEQ: only the sites changed
//	                                  after SEQ; ?label=K=V (repeatable: all must match), ?state=STATE
//	                                  (repeatable: any matches; "stale" for the silent sites), ?q=TEXT
//	                                  (site name contains TEXT) filter the sites, never the summary
//	GET  /api/v1/fleet/sites/{site}   one site in detail (fleet.SiteDetail); 404 for an unknown site
//	GET  /api/v1/fleet/history        the fleet's recent configuration history, newest first (?limit=N)
//	GET  /metrics                     fleet aggregates, and per-site series for the sites needing
//	                                  attention (at most MaxSiteSeries, worst first)
//	GET  /healthz                     200 while the process serves
//	GET  /readyz                      200 once the view is loaded, 503 before
//
// With a bearer token configured, everything except /healthz, /readyz and
// the page's static files requires it, as on the agent.
type FleetServer struct {
	*httpServer
	view     *fleet.View
	registry *prometheus.Registry
	states   []string
}

// ListenFleet validates opts (reading the token file and the TLS key pair)
// and binds the listen address, so that Addr is known before Run.
func ListenFleet(ctx context.Context, opts FleetOptions) (*FleetServer, error) {
	if opts.View == nil {
		return nil, errors.New("fleet server without a fleet view")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	h, err := newHTTPServer(ctx, opts.HTTP, opts.Logger)
	if err != nil {
		return nil, err
	}
	s := &FleetServer{httpServer: h, view: opts.View, states: fleet.SiteStates()}
	s.registry = newRegistry(fleetCollector{s.view, s.states})
	mux := s.baseRoutes(s.registry, s.ready, opts.HTTP.Pprof)
	mux.HandleFunc("GET /{$}", s.handlePage)
	mux.Handle("GET /api/v1/fleet", s.authorize(http.HandlerFunc(s.handleFleet)))
	mux.Handle("GET /api/v1/fleet/sites/{site}", s.authorize(http.HandlerFunc(s.handleSite)))
	mux.Handle("GET /api/v1/fleet/history", s.authorize(http.HandlerFunc(s.handleHistory)))
	h.setHandler(mux)
	return s, nil
}

// ready is what /readyz answers: ready once the view holds what the
// fleet's topics held when its reader started.
func (s *FleetServer) ready() (bool, string) {
	select {
	case <-s.view.Loaded():
		return true, ""
	default:
		return false, "reading the fleet topics"
	}
}

// SiteFilter selects sites of the fleet API's answer: the query parameters
// label, state and q of GET /api/v1/fleet.
type SiteFilter struct {
	// Labels must all match (label=K=V, repeatable).
	Labels map[string]string
	// States: a site matches when it is in any of them; "stale" matches
	// the silent sites whatever their state.
	States []string
	// Query is a substring of the site's name (case-insensitive).
	Query string
}

// stateStale is the ?state= value that selects the silent sites.
const stateStale = "stale"

// parseSiteFilter reads a SiteFilter from a query; states lists the site
// states it accepts besides "stale".
func parseSiteFilter(q url.Values, states []string) (SiteFilter, error) {
	f := SiteFilter{Query: strings.ToLower(strings.TrimSpace(q.Get("q")))}
	for _, l := range q["label"] {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return f, fmt.Errorf("label %q: want label=KEY=VALUE", l)
		}
		if f.Labels == nil {
			f.Labels = map[string]string{}
		}
		f.Labels[k] = v
	}
	for _, st := range q["state"] {
		if st != stateStale && !slices.Contains(states, st) {
			return f, fmt.Errorf("state %q: want one of %s, %s", st, strings.Join(states, ", "), stateStale)
		}
		f.States = append(f.States, st)
	}
	return f, nil
}

// Match reports whether the filter selects site.
func (f SiteFilter) Match(site fleet.Site) bool {
	if f.Query != "" && !strings.Contains(strings.ToLower(site.Site), f.Query) {
		return false
	}
	for k, v := range f.Labels {
		if got, ok := site.Labels[k]; !ok || got != v {
			return false
		}
	}
	if len(f.States) == 0 {
		return true
	}
	return slices.ContainsFunc(f.States, func(st string) bool {
		return st == site.State || (st == stateStale && site.Stale)
	})
}

// Fleet returns what GET /api/v1/fleet answers: the summary of the whole
// fleet and the sites changed after since that f selects.
func (s *FleetServer) Fleet(since int64, f SiteFilter) fleet.Fleet {
	out := s.view.Fleet(since)
	out.Sites = slices.DeleteFunc(out.Sites, func(st fleet.Site) bool { return !f.Match(st) })
	return out
}

func (s *FleetServer) handleFleet(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var since int64
	if v := q.Get("since"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("since %q: want the seq of a previous answer (an integer >= 0)", v))
			return
		}
		since = n
	}
	f, err := parseSiteFilter(q, s.states)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeLargeJSON(w, r, s.Fleet(since, f))
}

func (s *FleetServer) handleSite(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("site")
	d, ok := s.view.Site(name)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no site %q in the fleet", name))
		return
	}
	writeLargeJSON(w, r, d)
}

// HistoryResponse is the body of GET /api/v1/fleet/history.
type HistoryResponse struct {
	// Events are the fleet's most recent configuration events (revisions
	// published, applied, refused, reverted), newest first.
	Events []fleet.HistoryEvent `json:"events"`
}

func (s *FleetServer) handleHistory(w http.ResponseWriter, r *http.Request) {
	events := s.view.History()
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit %q: want an integer >= 1", v))
			return
		}
		events = events[:min(n, len(events))]
	}
	writeJSON(w, http.StatusOK, HistoryResponse{Events: events})
}

var fleetPageTemplate = template.Must(template.ParseFS(web, "web/fleet.html", "web/login.html"))

// fleetPageData is what the fleet page template renders; the page's
// script fetches the fleet itself.
type fleetPageData struct {
	pageAuth
	// States are the site states, worst first, for the counts and the
	// state filter.
	States []string
}

func (s *FleetServer) handlePage(w http.ResponseWriter, r *http.Request) {
	s.writePage(w, fleetPageTemplate, fleetPageData{
		pageAuth: pageAuth{Authorized: s.authorized(r), TokenRequired: s.TokenRequired(), Who: "fleet service"},
		States:   s.states,
	})
}
