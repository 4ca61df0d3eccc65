package observe

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/edgelink/edgelink/internal/kafka"
	"github.com/edgelink/edgelink/internal/link"
)

// translateTimeout bounds one offset translation.
const translateTimeout = 30 * time.Second

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	// Open: probes, and the page's static files (they hold no data).
	mux.HandleFunc("GET /healthz", s.handleHealthz)
	mux.HandleFunc("GET /readyz", s.handleReadyz)
	mux.Handle("GET /static/", http.StripPrefix("/static/", staticHandler()))
	// The page renders data only for an authorized request; without one it
	// asks for the token.
	mux.HandleFunc("GET /{$}", s.handlePage)
	// Behind the token, when one is set.
	mux.Handle("GET /metrics", s.authorize(promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{
		ErrorLog: promLogger{s}, ErrorHandling: promhttp.ContinueOnError,
	})))
	mux.Handle("GET /api/v1/status", s.authorize(http.HandlerFunc(s.handleStatus)))
	mux.Handle("GET /api/v1/links/{link}/translate", s.authorize(http.HandlerFunc(s.handleTranslate)))
	if s.opts.HTTP.Pprof {
		mux.Handle("GET /debug/pprof/", s.authorize(http.HandlerFunc(pprof.Index)))
		mux.Handle("GET /debug/pprof/profile", s.authorize(http.HandlerFunc(pprof.Profile)))
		mux.Handle("GET /debug/pprof/trace", s.authorize(http.HandlerFunc(pprof.Trace)))
	}
	csrf := http.NewCrossOriginProtection()
	if s.opts.Control != nil {
		c := s.opts.Control
		mux.Handle("POST /api/v1/links/{link}/cut", csrf.Handler(s.authorize(s.handleAction(c.Cut, "link network cut", "link_cut", c.IsCut))))
		mux.Handle("POST /api/v1/links/{link}/restore", csrf.Handler(s.authorize(s.handleAction(c.Restore, "link network restored", "link_cut", c.IsCut))))
	}
	if s.opts.AgentControl != nil {
		ac := s.opts.AgentControl
		mux.Handle("POST /api/v1/links/{link}/kill-agent", csrf.Handler(s.authorize(s.handleAction(ac.KillAgent, "agent killed", "agent_killed", ac.AgentKilled))))
		mux.Handle("POST /api/v1/links/{link}/start-agent", csrf.Handler(s.authorize(s.handleAction(ac.StartAgent, "agent started", "agent_killed", ac.AgentKilled))))
	}
	return mux
}

// promLogger routes the metrics handler's errors to the server's log.
type promLogger struct{ s *Server }

func (p promLogger) Println(v ...any) { p.s.logger.Error("serve metrics", "err", fmt.Sprint(v...)) }

// authorized reports whether r carries the bearer token, or no token is
// required.
func (s *Server) authorized(r *http.Request) bool {
	if s.token == "" {
		return true
	}
	auth := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), []byte(s.token)) == 1
}

// authorize requires the bearer token, when one is set.
func (s *Server) authorize(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="edgelink"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong bearer token: send Authorization: Bearer <token> (http.token in the configuration)")
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (s *Server) handleHealthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = fmt.Fprintln(w, "ok")
}

func (s *Server) handleReadyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	ready, reason := s.model.Ready()
	if !ready {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = fmt.Fprintln(w, "not ready: "+reason)
		return
	}
	_, _ = fmt.Fprintln(w, "ready")
}

func (s *Server) handleStatus(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Status())
}

// TranslateResponse is the body of GET /api/v1/links/{link}/translate.
type TranslateResponse struct {
	Link             string `json:"link"`
	SourceTopic      string `json:"source_topic"`
	DestinationTopic string `json:"destination_topic"`
	Partition        int32  `json:"partition"`
	SourceOffset     int64  `json:"source_offset"`
	// DestinationOffset is where a consumer of the mirror continues after
	// consuming the source up to (not including) SourceOffset.
	DestinationOffset int64 `json:"destination_offset"`
	// Exact is true when the record at DestinationOffset is the copy of
	// the source record at SourceOffset.
	Exact bool `json:"exact"`
	// Pending is true when SourceOffset has not been replicated yet.
	Pending bool `json:"pending"`
}

func (s *Server) handleTranslate(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("link")
	cfg, links := s.model.Current()
	lc := cfg.Link(name)
	if lc == nil || findLink(links, name) == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no link %q", name))
		return
	}
	q := r.URL.Query()
	topic := q.Get("topic")
	partition, perr := strconv.ParseInt(q.Get("partition"), 10, 32)
	offset, oerr := strconv.ParseInt(q.Get("offset"), 10, 64)
	if topic == "" || perr != nil || oerr != nil || partition < 0 || offset < 0 {
		writeError(w, http.StatusBadRequest, "want ?topic=SOURCE_TOPIC&partition=P&offset=O (partition and offset >= 0)")
		return
	}
	opts, err := kafka.ClientOptions(cfg.Clusters[lc.To], s.logger, kafka.Dial{})
	if err != nil {
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("destination client: %v", err))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), translateTimeout)
	defer cancel()
	dst := lc.DestinationTopic(cfg.Site, topic)
	tr, err := link.Translate(ctx, opts, dst, int32(partition), offset)
	if err != nil {
		writeError(w, http.StatusBadGateway, fmt.Sprintf("translate %s[%d]@%d: %v", topic, partition, offset, err))
		return
	}
	writeJSON(w, http.StatusOK, TranslateResponse{
		Link: name, SourceTopic: topic, DestinationTopic: tr.Topic, Partition: tr.Partition,
		SourceOffset: tr.Source, DestinationOffset: tr.Destination, Exact: tr.Exact, Pending: tr.Pending,
	})
}

// handleAction runs one of the demo's control actions on the link the path
// names, logs it (done says what happened) and answers with the state the
// action leaves under field.
func (s *Server) handleAction(do func(link string) error, done, field string, state func(link string) bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("link")
		err := do(name)
		switch {
		case errors.Is(err, ErrUnknownLink):
			writeError(w, http.StatusNotFound, err.Error())
			return
		case err != nil:
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		s.logger.Info(done+" from the status page", "link", name)
		writeJSON(w, http.StatusOK, map[string]any{"link": name, field: state(name)})
	})
}

// ErrorResponse is the body of every error answer of the API.
type ErrorResponse struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, ErrorResponse{Error: msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
