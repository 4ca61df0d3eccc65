// Package agent owns the links of one edgelink process. An Agent is built
// once from a configuration, runs every link in its own goroutine, and
// applies a new configuration while it runs (SIGHUP): links added start,
// links removed stop, links whose effective configuration changed restart,
// and every other link keeps running untouched — the same *link.Link in the
// same goroutine, without a pause.
//
// A link's effective configuration is its own settings, the settings of its
// source and destination clusters, and the site: changing a cluster restarts
// the links that use it, changing the site restarts every link. Settings
// the links do not use (http) restart nothing.
//
// Stopping a link, for good or to restart it, is the same as shutting the
// process down: its context is cancelled and the agent waits for its Run to
// return, so that its open transaction is finished or aborted first. A link
// and its replacement never run at the same time (they share a
// transactional id and would fence each other).
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/link"
)

// ErrStopped is returned by Apply once the agent is stopping or stopped, and
// by Run when the agent ran before.
var ErrStopped = errors.New("agent stopped")

// Options configure an Agent.
type Options struct {
	// LinkOptions returns the engine options of a link each time the agent
	// creates one (in New, and when Apply starts or restarts it); nil gives
	// every link the zero link.Options, that is the defaults. The demo uses
	// it to route its link through a simulated WAN.
	LinkOptions func(lc *config.Link) link.Options
}

// Changes is what Apply did, by link name, each list in configuration
// order (Removed in the previous configuration's order).
type Changes struct {
	// Added are links that are new: they started.
	Added []string
	// Removed are links that are gone: they stopped.
	Removed []string
	// Restarted are links whose effective configuration changed: the old
	// link stopped and a new one started.
	Restarted []string
	// Kept are links whose effective configuration did not change: they
	// kept running untouched.
	Kept []string
}

// Any reports whether Apply added, removed or restarted a link.
func (c Changes) Any() bool { return len(c.Added)+len(c.Removed)+len(c.Restarted) > 0 }

// Agent owns the links of one process. Create it with New, run it with Run,
// change it with Apply; Links, Config, Current and Changed may be called
// from any goroutine.
type Agent struct {
	opts   Options
	base   *slog.Logger // handed to the links, which name their component
	logger *slog.Logger
	// self identifies this agent among those sharing its links.
	self link.Agent

	// applyMu serialises Apply.
	applyMu sync.Mutex

	mu  sync.Mutex
	cfg *config.Config
	// runs are the current links, in configuration order.
	runs []*run
	// draining holds, by name, links that were stopped but whose Run had
	// not returned when an interrupted Apply gave up waiting; a link of the
	// same name starts only once it returned.
	draining map[string]*run
	// changed is closed, and replaced, whenever runs or cfg change.
	changed chan struct{}
	// ctx is Run's context once Run started: links run in contexts derived
	// from it. stopping is set once Run began to stop; no link starts then.
	ctx      context.Context
	kill     context.CancelCauseFunc
	ran      bool
	stopping bool
	// exited receives (without blocking) when a link's Run returns.
	exited chan struct{}
	// wg counts the links' goroutines.
	wg sync.WaitGroup
}

// run is one link and the goroutine that runs it.
type run struct {
	name     string
	settings settings
	link     *link.Link
	// cfg, lc and opts are what the link was built from; the membership
	// that shares it uses them too.
	cfg  *config.Config
	lc   *config.Link
	opts link.Options
	// cancel is set when the link's goroutine starts; retired once the
	// link was stopped (or replaced before it ever started).
	cancel  context.CancelFunc
	retired bool
	// done is closed once the link's Run returned (or, for a link that
	// never started, once it was retired); err and finished are set first.
	done     chan struct{}
	finished bool
	err      error
}

// New returns an agent for cfg, with one link per configured link. Nothing
// runs until Run.
func New(cfg *config.Config, opts Options, logger *slog.Logger) *Agent {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	a := &Agent{
		opts:     opts,
		base:     logger,
		logger:   logger.With("component", "agent"),
		self:     newSelf(),
		cfg:      cfg,
		draining: make(map[string]*run),
		changed:  make(chan struct{}),
		exited:   make(chan struct{}, 1),
	}
	for _, lc := range cfg.Links {
		a.runs = append(a.runs, a.newRun(cfg, lc))
	}
	return a
}

func (a *Agent) newRun(cfg *config.Config, lc *config.Link) *run {
	var opts link.Options
	if a.opts.LinkOptions != nil {
		opts = a.opts.LinkOptions(lc)
	}
	opts.Shared = true
	opts.Instance = fmt.Sprintf("%s/%d/%s", a.self.Host, a.self.PID, a.self.Instance)
	opts.LostRetry = lc.Membership.SessionTimeout + lc.Membership.RebalanceTimeout
	return &run{
		name:     lc.Name,
		settings: settingsOf(cfg, lc),
		link:     link.New(cfg, lc, opts, a.base),
		cfg:      cfg, lc: lc, opts: opts,
		done: make(chan struct{}),
	}
}

// Run runs every link, each in its own goroutine, until ctx ends; then it
// stops them all (each finishes or aborts its open transaction) and returns
// once every one returned. It also returns, the same way, once every
// current link stopped for good (fenced, or a record refused with
// on_error: stop): with nothing left to run, the process can exit and its
// supervisor restart it. The errors of the current links that stopped for
// good are joined and returned; a link that failed and was then removed or
// restarted by Apply no longer counts.
func (a *Agent) Run(ctx context.Context) error {
	a.mu.Lock()
	if a.ran {
		a.mu.Unlock()
		return fmt.Errorf("run agent: %w", ErrStopped)
	}
	a.ran = true
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	a.ctx, a.kill = ctx, cancel
	for _, r := range a.runs {
		if !r.retired { // an Apply waiting for it to stop replaces it
			a.startLocked(r)
		}
	}
	n := len(a.runs)
	a.mu.Unlock()
	a.logger.Info("agent running", "links", n)

	for waiting := true; waiting; {
		select {
		case <-ctx.Done():
			waiting = false
		case <-a.exited:
			if a.allReturned() {
				a.logger.Error("every link stopped for good: stopping the agent")
				waiting = false
			}
		}
	}

	a.mu.Lock()
	a.stopping = true
	a.mu.Unlock()
	cancel(nil)
	a.wg.Wait()

	a.mu.Lock()
	defer a.mu.Unlock()
	var errs []error
	for _, r := range a.runs {
		if r.err != nil && !r.retired {
			errs = append(errs, r.err)
		}
	}
	return errors.Join(errs...)
}

// Kill stops the agent as if its process had died (kill -9): its links
// commit nothing more and leave their open transactions behind, and it
// does not leave its groups, so the other agents sharing its links take
// its slots over only once its session times out. Run then returns. The
// demo's "kill agent" uses it; a real agent dies by a signal.
func (a *Agent) Kill() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.kill != nil {
		a.kill(link.ErrCrash)
	}
}

// allReturned reports whether the agent has links and every one of them
// returned from Run: before the agent stops, that means each failed. Links
// an Apply is stopping do not count.
func (a *Agent) allReturned() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, r := range a.runs {
		if r.retired {
			continue
		}
		if !r.finished {
			return false
		}
		n++
	}
	return n > 0
}

// startLocked starts r's goroutine; the caller holds a.mu, and Run has
// started and is not stopping.
func (a *Agent) startLocked(r *run) {
	ctx, cancel := context.WithCancel(a.ctx)
	r.cancel = cancel
	// The link's membership of its group lives as long as the link runs.
	shareCtx, stopSharing := context.WithCancel(ctx)
	shared := make(chan struct{})
	a.wg.Go(func() {
		defer close(shared)
		if r.lc.AirGapped() {
			// Nothing to share: a bundle link only shows its exports, and
			// a diode sender is one per site (a second one sends the same
			// records again, which the receiver drops).
			<-shareCtx.Done()
			return
		}
		a.share(shareCtx, r.cfg, r.lc, r.opts, r.link)
	})
	a.wg.Go(func() {
		defer cancel()
		err := r.link.Run(ctx)
		stopSharing()
		<-shared
		a.mu.Lock()
		r.err, r.finished = err, true
		if a.draining[r.name] == r {
			delete(a.draining, r.name)
		}
		a.mu.Unlock()
		close(r.done)
		select {
		case a.exited <- struct{}{}:
		default:
		}
	})
}

// retireLocked stops r: it cancels its link, or, for a link that never
// started, marks it done. The caller holds a.mu.
func (a *Agent) retireLocked(r *run) {
	r.retired = true
	if r.cancel != nil {
		r.cancel()
		return
	}
	r.finished = true
	close(r.done)
}

// Apply changes the running links to those of cfg, a loaded and valid
// configuration: links that are new start, links that are gone stop,
// links whose effective configuration changed stop and start again, and
// the others keep running untouched. Links stop first, and Apply waits for
// each to return (its open transaction drained as on shutdown) before any
// link starts. Called before Run, Apply only replaces the links Run will
// start.
//
// When ctx ends while Apply waits for links to stop, Apply returns ctx's
// error with the changes made so far: the links it stopped stay stopped
// (Run still waits for them), and the links it would have started are
// left out (Changes then lists every link stopped as Removed, and none as
// Added or Restarted); an Apply of the same configuration later starts
// them. Apply returns ErrStopped, changing nothing, once the agent is
// stopping.
func (a *Agent) Apply(ctx context.Context, cfg *config.Config) (Changes, error) {
	a.applyMu.Lock()
	defer a.applyMu.Unlock()
	if cfg == nil {
		return Changes{}, errors.New("apply configuration: no configuration")
	}

	a.mu.Lock()
	if a.stopping {
		a.mu.Unlock()
		return Changes{}, fmt.Errorf("apply configuration: %w", ErrStopped)
	}
	current := make(map[string]*run, len(a.runs))
	for _, r := range a.runs {
		current[r.name] = r
	}
	var (
		ch    Changes
		next  = make([]*run, 0, len(cfg.Links)) // nil: to start
		stop  []*run
		wait  []*run
		named = make(map[string]bool, len(cfg.Links))
	)
	for _, lc := range cfg.Links {
		named[lc.Name] = true
		r := current[lc.Name]
		switch {
		case r == nil:
			ch.Added = append(ch.Added, lc.Name)
		case equal(r.settings, settingsOf(cfg, lc)) && !r.finished:
			ch.Kept = append(ch.Kept, lc.Name)
			next = append(next, r)
			continue
		default:
			// Changed, or stopped for good (fenced, a refused record):
			// a reload starts it again, as after fixing the cause.
			ch.Restarted = append(ch.Restarted, lc.Name)
			stop = append(stop, r)
		}
		next = append(next, nil)
		if d := a.draining[lc.Name]; d != nil {
			wait = append(wait, d)
		}
	}
	for _, r := range a.runs {
		if !named[r.name] {
			ch.Removed = append(ch.Removed, r.name)
			stop = append(stop, r)
		}
	}
	stoppedForGood := make(map[*run]bool, len(stop))
	for _, r := range stop {
		stoppedForGood[r] = r.finished
		a.retireLocked(r)
		if !r.finished {
			a.draining[r.name] = r
		}
		wait = append(wait, r)
	}
	a.mu.Unlock()

	for _, r := range stop {
		reason := "removed from the configuration"
		switch {
		case named[r.name] && stoppedForGood[r]:
			reason = "it had stopped for good; the reload starts it again"
		case named[r.name]:
			reason = "its configuration changed"
		}
		a.logger.Info("stopping link", "link", r.name, "reason", reason)
	}
	var waitErr error
	for _, r := range wait {
		select {
		case <-r.done:
		case <-ctx.Done():
			waitErr = fmt.Errorf("apply configuration: wait for link %s to stop: %w", r.name, context.Cause(ctx))
		}
		if waitErr != nil {
			break
		}
	}

	// The new links are built outside the lock (LinkOptions is the
	// caller's code) and started under it.
	fresh := make([]*run, len(next))
	if waitErr == nil {
		for i, lc := range cfg.Links {
			if next[i] == nil {
				fresh[i] = a.newRun(cfg, lc)
			}
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopping && waitErr == nil {
		waitErr = fmt.Errorf("apply configuration: %w", ErrStopped)
	}
	runs := make([]*run, 0, len(next))
	var started []string
	for i, r := range next {
		if r == nil {
			if waitErr != nil {
				continue // left out: a later Apply starts it
			}
			r = fresh[i]
			if a.ctx != nil {
				a.startLocked(r)
				started = append(started, r.name)
			}
		}
		runs = append(runs, r)
	}
	a.cfg, a.runs = cfg, runs
	close(a.changed)
	a.changed = make(chan struct{})
	// Run checks again whether any link is left running.
	select {
	case a.exited <- struct{}{}:
	default:
	}
	if waitErr != nil {
		// Nothing started: every link stopped is gone for now.
		ch.Removed = ch.Removed[:0]
		for _, r := range stop {
			ch.Removed = append(ch.Removed, r.name)
		}
		ch.Added, ch.Restarted = nil, nil
		return ch, waitErr
	}
	for _, name := range started {
		a.logger.Info("link started", "link", name)
	}
	return ch, nil
}

// Links returns the current links, in configuration order; a link that
// stopped for good stays among them, failed, until Apply removes or
// restarts it.
func (a *Agent) Links() []*link.Link {
	_, links := a.Current()
	return links
}

// Config returns the configuration last applied.
func (a *Agent) Config() *config.Config {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cfg
}

// Current returns, as one consistent view, the configuration last applied
// and the current links in its order.
func (a *Agent) Current() (*config.Config, []*link.Link) {
	a.mu.Lock()
	defer a.mu.Unlock()
	links := make([]*link.Link, len(a.runs))
	for i, r := range a.runs {
		links[i] = r.link
	}
	return a.cfg, links
}

// Changed returns a channel that is closed the next time Apply changes the
// configuration or the links; call it again for the change after that.
// Take the channel before reading Current, so that no change is missed.
func (a *Agent) Changed() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.changed
}

// Self identifies this agent process among those sharing its links (and
// among the agents of its site reporting to the fleet).
func (a *Agent) Self() link.Agent { return a.self }
