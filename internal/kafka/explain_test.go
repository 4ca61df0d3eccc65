package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/testbed"
)

// tlsServer accepts TLS connections with the certificate in certFile and
// keyFile and closes them after the handshake; with clientCA it requires a
// client certificate signed by that CA.
func tlsServer(t *testing.T, certFile, keyFile, clientCA string) string {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	require.NoError(t, err)
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if clientCA != "" {
		pem, err := os.ReadFile(clientCA)
		require.NoError(t, err)
		pool := x509.NewCertPool()
		require.True(t, pool.AppendCertsFromPEM(pem))
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).HandshakeContext(context.Background())
			_ = c.Close()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		<-done
	})
	return l.Addr().String()
}

// connectErr connects to c with short timeouts and returns the error.
func connectErr(t *testing.T, c *config.Cluster) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	cl, _, err := Connect(ctx, c, nil, Dial{Timeout: 3 * time.Second})
	if cl != nil {
		cl.Close()
	}
	require.Error(t, err)
	return err
}

func TestExplainExpiredServerCertificate(t *testing.T) {
	files, err := testbed.WriteTLSFiles(t.TempDir(), "127.0.0.1")
	require.NoError(t, err)
	cert, key, err := files.IssueCert(testbed.CertSpec{
		Name: "expired", Hosts: []string{"127.0.0.1"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour),
	})
	require.NoError(t, err)
	addr := tlsServer(t, cert, key, "")
	err = connectErr(t, &config.Cluster{Name: "cloud", Bootstrap: []string{addr}, TLS: &config.TLS{Enabled: true, CAFile: files.CAFile}})
	require.ErrorContains(t, err, "the broker's certificate has expired or is not yet valid (valid ")
	require.ErrorContains(t, err, "renew the broker's certificate, or check this machine's clock")
	require.ErrorContains(t, err, "connect to cluster cloud")
}

func TestExplainExpiredClientCertificate(t *testing.T) {
	files, err := testbed.WriteTLSFiles(t.TempDir(), "127.0.0.1")
	require.NoError(t, err)
	ccert, ckey, err := files.IssueCert(testbed.CertSpec{
		Name: "old-client", Client: true,
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour),
	})
	require.NoError(t, err)
	scert, skey, err := files.IssueCert(testbed.CertSpec{Name: "server", Hosts: []string{"127.0.0.1"}})
	require.NoError(t, err)
	addr := tlsServer(t, scert, skey, files.CAFile)
	err = connectErr(t, &config.Cluster{Name: "cloud", Bootstrap: []string{addr}, TLS: &config.TLS{
		Enabled: true, CAFile: files.CAFile, CertFile: ccert, KeyFile: ckey,
	}})
	require.ErrorContains(t, err, "the client certificate (tls.cert_file) is outside its validity period: renew tls.cert_file and tls.key_file")
	require.ErrorContains(t, err, "client certificate "+ccert+" expired at ")
}

func TestExplainMissingClientCertificate(t *testing.T) {
	files, err := testbed.WriteTLSFiles(t.TempDir(), "127.0.0.1")
	require.NoError(t, err)
	scert, skey, err := files.IssueCert(testbed.CertSpec{Name: "server", Hosts: []string{"127.0.0.1"}})
	require.NoError(t, err)
	addr := tlsServer(t, scert, skey, files.CAFile)
	err = connectErr(t, &config.Cluster{Name: "cloud", Bootstrap: []string{addr}, TLS: &config.TLS{Enabled: true, CAFile: files.CAFile}})
	require.ErrorContains(t, err, "the broker rejected the TLS connection (tls: certificate required): when the broker requires mutual TLS, set tls.cert_file and tls.key_file")
}

func TestExplainConnectionRefused(t *testing.T) {
	l, err := new(net.ListenConfig).Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close()) // nothing listens there now
	err = connectErr(t, &config.Cluster{Name: "edge", Bootstrap: []string{addr}})
	require.ErrorContains(t, err, "connection refused to "+addr+": nothing listens there: check the cluster's bootstrap addresses and that the broker is running")
}

func TestExplainUnknownHost(t *testing.T) {
	err := connectErr(t, &config.Cluster{Name: "edge", Bootstrap: []string{"broker.does-not-exist.invalid:9092"}})
	require.ErrorContains(t, err, `host "broker.does-not-exist.invalid" not found: check the host names in the cluster's bootstrap`)
}

func TestExplainTLSAgainstPlaintextServer(t *testing.T) {
	// What a Kafka plaintext listener does with a TLS ClientHello: it reads
	// it as an oversized request and closes the connection.
	l, err := new(net.ListenConfig).Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 4)
			_, _ = c.Read(buf)
			_ = c.Close()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		<-done
	})
	err = connectErr(t, &config.Cluster{Name: "edge", Bootstrap: []string{l.Addr().String()}, TLS: &config.TLS{Enabled: true}})
	require.ErrorContains(t, err, "TLS to a port that does not speak TLS: this listener is plaintext: remove the tls block")
}

func TestExplainLeavesOtherErrorsAlone(t *testing.T) {
	plain := errors.New("something else")
	require.Same(t, plain, Explain(plain))
	require.NoError(t, Explain(nil))
	wrapped := fmt.Errorf("create topic: %w", kerr.TopicAuthorizationFailed)
	require.ErrorContains(t, Explain(wrapped), "not authorized: the cluster's ACLs do not allow this: run `edgelink check -c FILE --connect`")
	once := Explain(wrapped)
	require.Same(t, once, Explain(once), "explained once")
}
