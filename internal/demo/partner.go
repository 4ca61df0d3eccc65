package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgelink/edgelink/internal/agent"
	"github.com/edgelink/edgelink/internal/link"
	"github.com/edgelink/edgelink/internal/observe"
)

// killTimeout bounds the wait for a killed agent's Run to return.
const killTimeout = 30 * time.Second

// errNotRunning is returned by the partner's actions outside Demo.Run.
var errNotRunning = errors.New("the demo is not running")

// partner is agent B, the second agent running the demo link: the status
// page kills it, as if its process died, and starts a fresh one in its
// place. It is the page's observe.AgentControl. Its loop is owned by
// Demo.Run: each agent it starts runs in a goroutine that run waits for.
type partner struct {
	link     string
	newAgent func() *agent.Agent
	logger   *slog.Logger

	// failed receives the error of an agent that was not killed: one that
	// stopped by itself (every link stopped for good) ends the demo, as
	// agent A's would.
	failed chan error
	wg     sync.WaitGroup

	// mu serialises kill and start, and guards what follows.
	mu sync.Mutex
	// ctx is run's context while run runs; nil before and after, when no
	// agent starts.
	ctx context.Context
	// cur is the running agent; nil while killed.
	cur    *partnerRun
	killed bool
}

// partnerRun is one agent B and its goroutine.
type partnerRun struct {
	agent *agent.Agent
	// crash cancels the agent's context with link.ErrCrash, which is what
	// agent.Kill does once its Run began.
	crash  context.CancelCauseFunc
	killed atomic.Bool // set before the kill
	done   chan struct{}
}

func newPartner(name string, newAgent func() *agent.Agent, logger *slog.Logger) *partner {
	return &partner{link: name, newAgent: newAgent, logger: logger, failed: make(chan error, 1)}
}

// run starts agent B and keeps it (or its successors) running until ctx
// ends; then it waits for the running one to stop. It returns an agent's
// error when one stopped by itself.
func (p *partner) run(ctx context.Context) error {
	p.mu.Lock()
	p.ctx = ctx
	p.startLocked()
	p.mu.Unlock()
	var err error
	select {
	case <-ctx.Done():
	case err = <-p.failed:
	}
	p.mu.Lock()
	p.ctx = nil
	p.mu.Unlock()
	p.wg.Wait()
	if err == nil {
		select {
		case err = <-p.failed: // stopping failed
		default:
		}
	}
	return err
}

// startLocked starts a fresh agent B; the caller holds p.mu, and p.ctx is
// set.
func (p *partner) startLocked() {
	ctx, crash := context.WithCancelCause(p.ctx)
	r := &partnerRun{agent: p.newAgent(), crash: crash, done: make(chan struct{})}
	p.cur, p.killed = r, false
	p.wg.Go(func() {
		defer close(r.done)
		defer crash(nil)
		if err := r.agent.Run(ctx); err != nil && !r.killed.Load() {
			select {
			case p.failed <- fmt.Errorf("the second agent: %w", err):
			default:
			}
		}
	})
	p.logger.Info("second agent started", "link", p.link)
}

// kill kills the running agent B, as if its process died, and waits for
// its Run to return.
func (p *partner) kill() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ctx == nil {
		return errNotRunning
	}
	r := p.cur
	if r == nil {
		return nil
	}
	r.killed.Store(true)
	r.agent.Kill()
	// Kill does nothing to an agent whose Run has not begun; the cause
	// makes that one stop the same way.
	r.crash(link.ErrCrash)
	p.cur, p.killed = nil, true
	select {
	case <-r.done:
	case <-time.After(killTimeout):
		return fmt.Errorf("kill the second agent: still running %s after the kill", killTimeout)
	}
	p.logger.Info("second agent killed: its slots move to the survivor once its session times out", "link", p.link)
	return nil
}

// start starts a fresh agent B in place of a killed one.
func (p *partner) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ctx == nil {
		return errNotRunning
	}
	if p.cur != nil {
		return nil
	}
	p.startLocked()
	return nil
}

// isKilled reports whether agent B is killed.
func (p *partner) isKilled() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.killed
}

// KillAgent implements observe.AgentControl.
func (p *partner) KillAgent(name string) error {
	if name != p.link {
		return fmt.Errorf("link %q: %w", name, observe.ErrUnknownLink)
	}
	return p.kill()
}

// StartAgent implements observe.AgentControl.
func (p *partner) StartAgent(name string) error {
	if name != p.link {
		return fmt.Errorf("link %q: %w", name, observe.ErrUnknownLink)
	}
	return p.start()
}

// AgentKilled implements observe.AgentControl.
func (p *partner) AgentKilled(name string) bool {
	return name == p.link && p.isKilled()
}
