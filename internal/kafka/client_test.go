package kafka

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"path/filepath"
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
		SASL: &config.SASL{Mechanism: "GSSAPI"},
	}, nil, Dial{})
	require.True(t, errors.Is(err, ErrUnsupported), "%v", err)
	require.ErrorContains(t, err, "cluster cloud")
}

func TestClientOptionsPasswordFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "pw")
	require.NoError(t, os.WriteFile(file, []byte("s3cret\n"), 0o600))
	m, err := saslMechanism(&config.SASL{Mechanism: config.MechanismPlain, Username: "u", PasswordFile: file})
	require.NoError(t, err)
	_, first, err := m.Authenticate(t.Context(), "127.0.0.1:9092")
	require.NoError(t, err)
	require.Equal(t, "\x00u\x00s3cret", string(first), "read at connect time, line break trimmed")

	require.NoError(t, os.WriteFile(file, nil, 0o600))
	_, err = saslMechanism(&config.SASL{Mechanism: config.MechanismPlain, Username: "u", PasswordFile: file})
	require.EqualError(t, err, "sasl.password_file "+file+" is empty")
}
