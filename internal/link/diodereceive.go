package link

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"golang.org/x/sync/errgroup"

	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/diode"
)

// DiodeReceiver is the cloud's end of a link sent through a data diode: it
// listens for the sender's datagrams and writes what it hears to the
// link's destination exactly once, as the link would have: contiguous
// offsets per partition, checkpoints in the same transactions.
type DiodeReceiver struct {
	link *Link
	conn net.PacketConn
	rcv  *diode.Receiver
	src  *diodeSource
}

// diodeReadBuffer is the socket's receive buffer: bursts at line rate must
// not overflow it while the receiver is busy.
const diodeReadBuffer = 8 << 20

// NewDiodeReceiver listens on listen (host:port, UDP) for link lc of cfg.
func NewDiodeReceiver(ctx context.Context, cfg *config.Config, lc *config.Link, listen string, opts Options, logger *slog.Logger) (*DiodeReceiver, error) {
	if lc.Diode == nil {
		return nil, fmt.Errorf("link %s has no diode block", lc.Name)
	}
	key, err := diode.LoadKeyFile(lc.Diode.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("link %s: diode.key_file: %w", lc.Name, err)
	}
	var lc0 net.ListenConfig
	conn, err := lc0.ListenPacket(ctx, "udp", listen)
	if err != nil {
		return nil, fmt.Errorf("listen for the diode on %s: %w", listen, err)
	}
	if uc, ok := conn.(*net.UDPConn); ok {
		_ = uc.SetReadBuffer(diodeReadBuffer) // best effort: the system may cap it
	}
	rcv := diode.NewReceiver(conn, diode.ReceiverOptions{Key: key, Logger: logger})
	src := newDiodeSource(rcv)
	opts.source = func() (source, error) { return src, nil }
	l := New(cfg, lc, opts, logger)
	src.l = l
	return &DiodeReceiver{link: l, conn: conn, rcv: rcv, src: src}, nil
}

// Link returns the link the receiver writes, for its status.
func (r *DiodeReceiver) Link() *Link { return r.link }

// Addr is the address the receiver listens on.
func (r *DiodeReceiver) Addr() string { return r.conn.LocalAddr().String() }

// Run receives and writes until ctx ends (the open transactions are
// finished or aborted, as a link's are) or the link stops for good.
func (r *DiodeReceiver) Run(ctx context.Context) error {
	defer func() { _ = r.conn.Close() }()
	g, gctx := errgroup.WithContext(ctx)
	recv, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	g.Go(func() error { return r.rcv.Run(recv) })
	g.Go(func() error { r.src.run(recv); return nil })
	g.Go(func() error {
		defer stop() // the receiver stops once the link is done
		return r.link.Run(gctx)
	})
	return g.Wait()
}
