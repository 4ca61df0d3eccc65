package kafka

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/edgelink/edgelink/internal/config"
)

func TestDialerTimeoutBoundsACustomDialer(t *testing.T) {
	hang := func(ctx context.Context, _, _ string) (net.Conn, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	began := time.Now()
	_, err := Dial{Raw: hang, Timeout: 200 * time.Millisecond}.dialer(nil)(context.Background(), "tcp", "10.255.255.1:9092")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(began), 2*time.Second)
}

func TestDialerTLSHandshakeFailureNamesTheHost(t *testing.T) {
	l, err := new(net.ListenConfig).Listen(context.Background(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	go func() { // a plaintext server: the TLS handshake cannot succeed
		c, err := l.Accept()
		if err == nil {
			_, _ = c.Write([]byte("not tls at all\n"))
			_ = c.Close()
		}
	}()
	_, err = Dial{Timeout: 2 * time.Second}.dialer(&tls.Config{MinVersion: tls.VersionTLS12})(context.Background(), "tcp", l.Addr().String())
	require.ErrorContains(t, err, "tls handshake with "+l.Addr().String())
}

func TestClientOptionsRejectsUnsupportedMechanism(t *testing.T) {
	_, err := ClientOptions(&config.Cluster{
		Name: "cloud", Bootstrap: []string{"127.0.0.1:9092"},
		SASL: &config.SASL{Mechanism: config.MechanismOAuthBearer},
	}, nil, Dial{})
	require.True(t, errors.Is(err, ErrUnsupported), "%v", err)
	require.ErrorContains(t, err, "cluster cloud")
}
