package observe

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/edgelink/edgelink/internal/kafka"
	"github.com/edgelink/edgelink/internal/link"
)

// translateTimeout bounds one offset translation.
const translateTimeout = 30 * time.Second

func (s *Server) routes() http.Handler {
	mux := s.baseRoutes(s.registry, s.model.Ready, s.opts.HTTP.Pprof)
	// The page renders data only for an authorized request; without one it
	// asks for the token.
	mux.HandleFunc("GET /{$}", s.handlePage)
	// Behind the token, when one is set.
	mux.Handle("GET /api/v1/status", s.authorize(http.HandlerFunc(s.handleStatus)))
	mux.Handle("GET /api/v1/links/{link}/translate", s.authorize(http.HandlerFunc(s.handleTranslate)))
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
	encodeJSON(w, code, v, "  ")
}

// writeLargeJSON is writeJSON (200) for answers that grow with the fleet
// (1,000 sites are about 1.6 MB of JSON): not indented, and gzipped for a
// client that accepts it.
func writeLargeJSON(w http.ResponseWriter, r *http.Request, v any) {
	w.Header().Add("Vary", "Accept-Encoding")
	if !acceptsGzip(r) {
		encodeJSON(w, http.StatusOK, v, "")
		return
	}
	zw, _ := gzip.NewWriterLevel(w, gzip.BestSpeed) // a valid level: no error
	defer func() { _ = zw.Close() }()
	w.Header().Set("Content-Encoding", "gzip")
	encodeJSON(gzipResponse{ResponseWriter: w, zw: zw}, http.StatusOK, v, "")
}

func encodeJSON(w http.ResponseWriter, code int, v any, indent string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", indent)
	_ = enc.Encode(v)
}

// gzipResponse writes a response's body through a gzip writer.
type gzipResponse struct {
	http.ResponseWriter
	zw io.Writer
}

func (g gzipResponse) Write(b []byte) (int, error) { return g.zw.Write(b) }

// acceptsGzip reports whether the request's Accept-Encoding takes gzip.
func acceptsGzip(r *http.Request) bool {
	for part := range strings.SplitSeq(r.Header.Get("Accept-Encoding"), ",") {
		enc, params, _ := strings.Cut(part, ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") && strings.ReplaceAll(params, " ", "") != "q=0" {
			return true
		}
	}
	return false
}
