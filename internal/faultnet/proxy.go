package faultnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// Proxy is a TCP listener on loopback that forwards every connection it
// accepts to a fixed target through its Network, so that the Network's
// faults apply to programs that cannot take a dialer: other processes, such
// as the edgelink binary or a JVM, connect to Proxy.Addr instead of target.
type Proxy struct {
	n      *Network
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	done chan struct{} // closed by Close

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
}

// Listen starts a proxy on a free 127.0.0.1 port that forwards to target
// through n. It stops when closed or when n is closed.
func (n *Network) Listen(target string) (*Proxy, error) {
	return n.ListenOn("127.0.0.1:0", target)
}

// ListenOn is Listen on a given address.
func (n *Network) ListenOn(addr, target string) (*Proxy, error) {
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("faultnet: proxy for %s: %w", target, err)
	}
	p := &Proxy{n: n, ln: ln, target: target, done: make(chan struct{}), conns: make(map[net.Conn]struct{})}
	p.wg.Add(2)
	go func() { defer p.wg.Done(); p.accept() }()
	go func() {
		defer p.wg.Done()
		select {
		case <-n.done:
			_ = p.Close()
		case <-p.done:
		}
	}()
	return p, nil
}

// Addr is the proxy's listening address, host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target is the address the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

// Close stops listening and closes every forwarded connection.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.done)
	conns := make([]net.Conn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	err := p.ln.Close()
	for _, c := range conns {
		_ = c.Close()
	}
	return err
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

func (p *Proxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				p.n.logger.Warn("proxy accept", "target", p.target, "err", err)
			}
			return
		}
		if !p.track(client) {
			_ = client.Close()
			return
		}
		go p.forward(client)
	}
}

// forward dials the target through the network (so a cut link leaves the
// client hanging, as a black hole would, and a refusing one closes it) and
// pumps bytes both ways until either side ends.
func (p *Proxy) forward(client net.Conn) {
	defer p.untrack(client)
	defer func() { _ = client.Close() }()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		// Give up a hanging dial when the proxy closes.
		select {
		case <-ctx.Done():
		case <-p.done:
			cancel()
		}
	}()
	server, err := p.n.dial(ctx, "tcp", p.target)
	if err != nil {
		p.n.logger.Debug("proxy dial", "target", p.target, "err", err)
		return
	}
	if !p.track(server) {
		_ = server.Close()
		return
	}
	defer p.untrack(server)
	defer func() { _ = server.Close() }()
	done := make(chan struct{}, 2)
	pump := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		// One side ended: end both, as a TCP proxy does on reset.
		_ = dst.Close()
		_ = src.Close()
		done <- struct{}{}
	}
	go pump(server, client)
	go pump(client, server)
	<-done
	<-done
}
