package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/edgelink/edgelink/internal/fleet"
)

// Routes of the API load, as the report names them.
const (
	routeFull  = "GET /api/v1/fleet"
	routeSince = "GET /api/v1/fleet?since=SEQ"
	routeSite  = "GET /api/v1/fleet/sites/{site}"
)

var routes = []string{routeFull, routeSince, routeSite}

// pollEvery is how often an open fleet page asks for what changed.
const pollEvery = 2 * time.Second

// apiLoad asks the fleet API what a few open fleet pages ask, and records
// every answer's latency: from sending the request to the last byte of
// the (gzip) body.
type apiLoad struct {
	base  string
	sites []string
	cl    *http.Client

	mu    sync.Mutex
	calls map[string][]call
}

// call is one answered request.
type call struct {
	took  time.Duration
	bytes int
	err   bool
}

func newAPILoad(base string, sites []string) *apiLoad {
	// Keep-alive connections, as a browser's; gzip asked for explicitly,
	// so that the transport leaves the body as the service sent it.
	tr := &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 32, IdleConnTimeout: time.Minute}
	return &apiLoad{
		base: strings.TrimRight(base, "/"), sites: sites,
		cl:    &http.Client{Transport: tr, Timeout: 30 * time.Second},
		calls: map[string][]call{},
	}
}

// run sends the load until ctx ends: viewers pages polling every 2 s
// (spread over the 2 s), fullRate full fleet requests and siteRate site
// details per second.
func (l *apiLoad) run(ctx context.Context, viewers int, fullRate, siteRate float64) {
	defer l.cl.CloseIdleConnections()
	var wg sync.WaitGroup
	defer wg.Wait()
	for i := range viewers {
		offset := pollEvery * time.Duration(i) / time.Duration(viewers)
		wg.Go(func() { l.viewer(ctx, offset) })
	}
	if fullRate > 0 {
		wg.Go(func() {
			every(ctx, rateInterval(fullRate), func() { l.ask(ctx, routeFull, "/api/v1/fleet") })
		})
	}
	if siteRate > 0 {
		rng := rand.New(rand.NewPCG(1, 2))
		wg.Go(func() {
			every(ctx, rateInterval(siteRate), func() {
				l.ask(ctx, routeSite, "/api/v1/fleet/sites/"+l.sites[rng.IntN(len(l.sites))])
			})
		})
	}
}

// viewer polls as the fleet page does: the whole fleet first, then every
// 2 s the sites changed since the seq of the previous answer.
func (l *apiLoad) viewer(ctx context.Context, offset time.Duration) {
	select {
	case <-ctx.Done():
		return
	case <-time.After(offset):
	}
	var seq int64
	every(ctx, pollEvery, func() {
		route, path := routeFull, "/api/v1/fleet"
		if seq > 0 {
			route, path = routeSince, fmt.Sprintf("/api/v1/fleet?since=%d", seq)
		}
		body := l.ask(ctx, route, path)
		if body == nil {
			return
		}
		var f struct {
			Seq int64 `json:"seq"`
		}
		if zr, err := gzip.NewReader(bytes.NewReader(body)); err == nil {
			if json.NewDecoder(zr).Decode(&f) == nil {
				seq = f.Seq
			}
		}
	})
}

// every calls f at once and then every d until ctx ends; a call that
// takes longer delays the next, as a page's poll does.
func every(ctx context.Context, d time.Duration, f func()) {
	next := time.Now()
	for {
		f()
		next = next.Add(d)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(next)):
		}
	}
}

func rateInterval(perSecond float64) time.Duration {
	return time.Duration(float64(time.Second) / perSecond)
}

// ask sends one request and records it under route; it returns the body
// (gzip) of a 200 answer, nil otherwise.
func (l *apiLoad) ask(ctx context.Context, route, path string) []byte {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.base+path, nil)
	if err != nil {
		l.record(route, call{err: true})
		return nil
	}
	req.Header.Set("Accept-Encoding", "gzip, deflate, br")
	began := time.Now()
	resp, err := l.cl.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			l.record(route, call{err: true})
		}
		return nil
	}
	var buf bytes.Buffer
	_, err = io.Copy(&buf, resp.Body)
	took := time.Since(began)
	resp.Body.Close()
	if ctx.Err() != nil {
		return nil // cut short by the end of the window
	}
	if err != nil || resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Encoding") != "gzip" {
		l.record(route, call{err: true})
		return nil
	}
	l.record(route, call{took: took, bytes: buf.Len()})
	return buf.Bytes()
}

func (l *apiLoad) record(route string, c call) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls[route] = append(l.calls[route], c)
}

// routeStats is one route's figures.
type routeStats struct {
	route            string
	requests, errors int
	perSecond        float64
	p50, p95, max    time.Duration
	// bytes is the median size of an answer's body as sent (gzip).
	bytes int
}

// stats returns every route's figures over a window of length d.
func (l *apiLoad) stats(d time.Duration) []routeStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []routeStats
	for _, r := range routes {
		cs := l.calls[r]
		if len(cs) == 0 {
			continue
		}
		st := routeStats{route: r, requests: len(cs), perSecond: float64(len(cs)) / d.Seconds()}
		var took []time.Duration
		var sizes []int
		for _, c := range cs {
			if c.err {
				st.errors++
				continue
			}
			took = append(took, c.took)
			sizes = append(sizes, c.bytes)
		}
		if len(took) > 0 {
			slices.Sort(took)
			st.p50, st.p95, st.max = quantile(took, 0.5), quantile(took, 0.95), took[len(took)-1]
			st.bytes = medianInt(sizes)
		}
		out = append(out, st)
	}
	return out
}

// quantile returns the q-quantile of sorted (nearest rank).
func quantile(sorted []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// siteNames are the names of the simulated sites.
func siteNames(sites []*fleet.SimSite) []string {
	out := make([]string, len(sites))
	for i, s := range sites {
		out[i] = s.Name
	}
	return out
}
