package observe

import (
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/edgelink/edgelink/internal/config"
)

// shutdownTimeout bounds the graceful shutdown of the HTTP server.
const shutdownTimeout = 5 * time.Second

// httpServer is what the agent's Server and the FleetServer share: the
// listener (TLS when configured), the bearer token and its check, the
// probes, metrics and profiles, and the run and shutdown of the
// http.Server. Each embeds one and adds its own routes.
type httpServer struct {
	logger *slog.Logger
	token  string
	ln     net.Listener
	scheme string
	srv    *http.Server
}

// newHTTPServer reads the token file and the TLS key pair of cfg and binds
// its listen address (config.DefaultHTTPListen when empty), so that Addr is
// known before Run. The caller sets the handler with setHandler.
func newHTTPServer(ctx context.Context, cfg config.HTTP, logger *slog.Logger) (*httpServer, error) {
	if cfg.Listen == "" {
		cfg.Listen = config.DefaultHTTPListen
	}
	h := &httpServer{logger: logger.With("component", "http"), token: cfg.Token, scheme: "http"}
	if cfg.TokenFile != "" {
		b, err := os.ReadFile(cfg.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("read http.token_file: %w", err)
		}
		h.token = strings.TrimSpace(string(b))
		if h.token == "" {
			return nil, fmt.Errorf("http.token_file %s is empty: write the token into it", cfg.TokenFile)
		}
	}
	var tlsCfg *tls.Config
	if t := cfg.TLS; t != nil {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load http.tls certificate %s and key %s: %w", t.CertFile, t.KeyFile, err)
		}
		tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
		h.scheme = "https"
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s (http.listen): %w", cfg.Listen, err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	h.ln = ln
	h.srv = &http.Server{
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(h.logger.Handler(), slog.LevelWarn),
	}
	return h, nil
}

// setHandler sets what the server serves; called once, before Run.
func (h *httpServer) setHandler(handler http.Handler) { h.srv.Handler = handler }

// Addr returns the address the server listens on.
func (h *httpServer) Addr() net.Addr { return h.ln.Addr() }

// URL returns the page's URL; an unspecified host (":9644") is shown as
// 127.0.0.1.
func (h *httpServer) URL() string {
	host, port, _ := net.SplitHostPort(h.ln.Addr().String())
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return h.scheme + "://" + net.JoinHostPort(host, port) + "/"
}

// TokenRequired reports whether the API requires a bearer token.
func (h *httpServer) TokenRequired() bool { return h.token != "" }

// Run serves until ctx ends, then shuts the server down gracefully
// (bounded by 5 s).
func (h *httpServer) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	errc := make(chan error, 1)
	wg.Go(func() { errc <- h.srv.Serve(h.ln) })
	h.logger.Info("http server listening", "url", h.URL(), "token", h.TokenRequired())
	select {
	case err := <-errc:
		return fmt.Errorf("serve http: %w", err)
	case <-ctx.Done():
	}
	shutCtx, stop := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer stop()
	err := h.srv.Shutdown(shutCtx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return fmt.Errorf("serve http: %w", serr)
	}
	if err != nil {
		_ = h.srv.Close()
		return fmt.Errorf("shut down http server: %w", err)
	}
	return nil
}

// Close releases the listen address of a server that never ran; Run
// releases it itself.
func (h *httpServer) Close() error {
	if err := h.ln.Close(); err != nil {
		return fmt.Errorf("close http listener: %w", err)
	}
	return nil
}

// baseRoutes returns a mux with what every server of the package serves:
// the probes (ready answers /readyz), the pages' static files, the metrics
// of reg and, with pprof, Go's runtime profiles. The probes and static
// files are open; the rest requires the token.
func (h *httpServer) baseRoutes(reg *prometheus.Registry, ready func() (bool, string), pprofOn bool) *http.ServeMux {
	mux := http.NewServeMux()
	// Open: probes, and the pages' static files (they hold no data).
	mux.HandleFunc("GET /healthz", handleHealthz)
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		ok, reason := ready()
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintln(w, "not ready: "+reason)
			return
		}
		_, _ = fmt.Fprintln(w, "ready")
	})
	mux.Handle("GET /static/", http.StripPrefix("/static/", staticHandler()))
	// Behind the token, when one is set.
	mux.Handle("GET /metrics", h.authorize(promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: promLogger{h.logger}, ErrorHandling: promhttp.ContinueOnError,
	})))
	if pprofOn {
		mux.Handle("GET /debug/pprof/", h.authorize(http.HandlerFunc(pprof.Index)))
		mux.Handle("GET /debug/pprof/profile", h.authorize(http.HandlerFunc(pprof.Profile)))
		mux.Handle("GET /debug/pprof/trace", h.authorize(http.HandlerFunc(pprof.Trace)))
	}
	return mux
}

func handleHealthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = fmt.Fprintln(w, "ok")
}

// promLogger routes the metrics handler's errors to the server's log.
type promLogger struct{ logger *slog.Logger }

func (p promLogger) Println(v ...any) { p.logger.Error("serve metrics", "err", fmt.Sprint(v...)) }

// authorized reports whether r carries the bearer token, or no token is
// required.
func (h *httpServer) authorized(r *http.Request) bool {
	if h.token == "" {
		return true
	}
	auth := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), []byte(h.token)) == 1
}

// authorize requires the bearer token, when one is set.
func (h *httpServer) authorize(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !h.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="edgelink"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong bearer token: send Authorization: Bearer <token> (http.token in the configuration)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// writePage renders a page template with the headers every page gets: no
// caching, and a content security policy that allows the page's own
// scripts and style sheets only.
func (h *httpServer) writePage(w http.ResponseWriter, tmpl *template.Template, data any) {
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, data); err != nil {
		h.logger.Error("render page", "page", tmpl.Name(), "err", err)
		http.Error(w, "render page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(buf.Bytes())
}
