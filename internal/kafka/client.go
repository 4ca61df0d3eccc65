// Package kafka turns a cluster's configuration into franz-go clients and
// answers questions about a cluster (what brokers and topics it has).
package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"github.com/twmb/franz-go/plugin/kslog"

	"github.com/edgelink/edgelink/internal/config"
)

// ErrUnsupported marks a configured feature this build cannot use yet.
var ErrUnsupported = errors.New("not supported")

// DialFunc opens a raw connection to a broker.
type DialFunc func(ctx context.Context, network, host string) (net.Conn, error)

// Dial says how connections to brokers are opened.
type Dial struct {
	// Raw opens the TCP connection; nil uses a net.Dialer. Tests route it
	// through a fault-injecting network.
	Raw DialFunc
	// Timeout bounds opening a connection, TLS handshake included;
	// DefaultDialTimeout when zero.
	Timeout time.Duration
}

// DefaultDialTimeout bounds opening a broker connection unless a Dial says otherwise.
const DefaultDialTimeout = 10 * time.Second

// ClientOptions returns the franz-go options that connect to cluster c:
// seed brokers, client id, the dialer (with TLS) and SASL. Logs of the
// client go to logger at warning level and above.
func ClientOptions(c *config.Cluster, logger *slog.Logger, d Dial) ([]kgo.Opt, error) {
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Bootstrap...),
		kgo.ClientID(c.ClientID),
	}
	if logger != nil {
		// The client's own logs are chatty at info level: keep warnings.
		quiet := slog.New(minLevel{logger.Handler(), slog.LevelWarn})
		opts = append(opts, kgo.WithLogger(kslog.New(quiet.With("cluster", c.Name))))
	}
	var tlsCfg *tls.Config
	if c.TLS != nil && c.TLS.Enabled {
		cfg, err := tlsConfig(c.TLS)
		if err != nil {
			return nil, fmt.Errorf("cluster %s: %w", c.Name, err)
		}
		if c.TLS.InsecureSkipVerify && logger != nil {
			logger.Warn("TLS certificate verification is DISABLED: the connection can be intercepted",
				"cluster", c.Name, "setting", "tls.insecure_skip_verify")
		}
		tlsCfg = cfg
	}
	// One dialer for every case: franz-go refuses a custom dialer together
	// with its own TLS option, and does not time out a custom dialer.
	opts = append(opts, kgo.Dialer(d.dialer(tlsCfg)))
	if c.SASL != nil {
		m, err := saslMechanism(c.SASL)
		if err != nil {
			return nil, fmt.Errorf("cluster %s: %w", c.Name, err)
		}
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

// dialer returns the dial function: the raw connection, then TLS when
// configured, all within the timeout.
func (d Dial) dialer(tlsCfg *tls.Config) DialFunc {
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = DefaultDialTimeout
	}
	raw := d.Raw
	if raw == nil {
		raw = (&net.Dialer{}).DialContext
	}
	return func(ctx context.Context, network, host string) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		conn, err := raw(ctx, network, host)
		if err != nil || tlsCfg == nil {
			return conn, err
		}
		cfg := tlsCfg.Clone()
		if cfg.ServerName == "" {
			if h, _, err := net.SplitHostPort(host); err == nil {
				cfg.ServerName = h
			}
		}
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = conn.Close()
			// Explained here, so that every caller (a link's session
			// included) sees what to change, not only an x509 error.
			return nil, Explain(fmt.Errorf("tls handshake with %s: %w", host, err))
		}
		return tc, nil
	}
}

// NewClient returns a client for cluster c with the extra options appended.
func NewClient(c *config.Cluster, logger *slog.Logger, extra ...kgo.Opt) (*kgo.Client, error) {
	opts, err := ClientOptions(c, logger, Dial{})
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("create client for cluster %s: %w", c.Name, err)
	}
	return cl, nil
}

func tlsConfig(t *config.TLS) (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify, //nolint:gosec // only when the operator asks for it explicitly; logged loudly
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca_file %s: no PEM certificate found", t.CAFile)
		}
		cfg.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load tls.cert_file and tls.key_file: %w", err)
		}
		// Offered only when a broker asks for it, after a validity check:
		// a broker that rejects an expired certificate says only
		// "bad certificate", if anything.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if err := checkValidity(cert.Leaf, t.CertFile, time.Now()); err != nil {
				return nil, err
			}
			return &cert, nil
		}
	}
	return cfg, nil
}

// saslMechanism builds the SASL mechanism of s. A password file is read
// here, when a session connects, so a rotated password is picked up by
// the next session; its trailing line break is not part of the password.
func saslMechanism(s *config.SASL) (sasl.Mechanism, error) {
	pass := s.Password
	if s.PasswordFile != "" {
		b, err := os.ReadFile(s.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("read sasl.password_file: %w", err)
		}
		pass = strings.TrimRight(string(b), "\r\n")
		if pass == "" {
			return nil, fmt.Errorf("sasl.password_file %s is empty", s.PasswordFile)
		}
	}
	switch s.Mechanism {
	case config.MechanismPlain:
		return plain.Auth{User: s.Username, Pass: pass}.AsMechanism(), nil
	case config.MechanismSCRAMSHA256:
		return scram.Auth{User: s.Username, Pass: pass}.AsSha256Mechanism(), nil
	case config.MechanismSCRAMSHA512:
		return scram.Auth{User: s.Username, Pass: pass}.AsSha512Mechanism(), nil
	case config.MechanismOAuthBearer:
		return sharedTokenSource(s).Mechanism(), nil
	default:
		return nil, fmt.Errorf("sasl mechanism %s: %w in this version (use PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER)", s.Mechanism, ErrUnsupported)
	}
}

// ClusterInfo is what a cluster reports about itself.
type ClusterInfo struct {
	// ClusterID is the Kafka cluster id (nil for some Kafka-protocol servers).
	ClusterID string
	// Controller is the node id of the active controller, or -1.
	Controller int32
	// Brokers lists the live brokers, by node id.
	Brokers []BrokerInfo
	// Topics maps every visible non-internal topic to its partition count.
	Topics map[string]int
}

// BrokerInfo is one live broker.
type BrokerInfo struct {
	NodeID int32
	Addr   string
	Rack   string
}

// TopicNames returns the topic names, sorted.
func (i *ClusterInfo) TopicNames() []string {
	names := make([]string, 0, len(i.Topics))
	for t := range i.Topics {
		names = append(names, t)
	}
	sort.Strings(names)
	return names
}

// Probe asks the cluster for its metadata with a direct (uncached) request.
func Probe(ctx context.Context, cl *kgo.Client) (*ClusterInfo, error) {
	req := kmsg.NewPtrMetadataRequest() // nil Topics: all topics
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("request metadata: %w", err)
	}
	info := &ClusterInfo{Controller: resp.ControllerID, Topics: make(map[string]int)}
	if resp.ClusterID != nil {
		info.ClusterID = *resp.ClusterID
	}
	for _, b := range resp.Brokers {
		bi := BrokerInfo{NodeID: b.NodeID, Addr: fmt.Sprintf("%s:%d", b.Host, b.Port)}
		if b.Rack != nil {
			bi.Rack = *b.Rack
		}
		info.Brokers = append(info.Brokers, bi)
	}
	sort.Slice(info.Brokers, func(a, b int) bool { return info.Brokers[a].NodeID < info.Brokers[b].NodeID })
	for _, t := range resp.Topics {
		if t.Topic == nil || t.IsInternal {
			continue
		}
		if err := kerrOf(t.ErrorCode); err != nil {
			return nil, fmt.Errorf("describe topic %s: %w", *t.Topic, err)
		}
		info.Topics[*t.Topic] = len(t.Partitions)
	}
	return info, nil
}

// minLevel is a slog.Handler that drops records below a level.
type minLevel struct {
	slog.Handler
	level slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.level && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(as), h.level}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.level}
}

// Connect builds a client for cluster c and asks the cluster for its
// metadata, so that bad addresses, TLS settings and credentials show at
// once. Errors are explained (see [Explain]). The caller closes the client.
func Connect(ctx context.Context, c *config.Cluster, logger *slog.Logger, d Dial, extra ...kgo.Opt) (*kgo.Client, *ClusterInfo, error) {
	opts, err := ClientOptions(c, logger, d)
	if err != nil {
		return nil, nil, err
	}
	cl, err := kgo.NewClient(append(append(opts, kgo.RetryTimeout(10*time.Second)), extra...)...)
	if err != nil {
		return nil, nil, fmt.Errorf("create client for cluster %s: %w", c.Name, err)
	}
	info, err := Probe(ctx, cl)
	if err != nil {
		cl.Close()
		return nil, nil, Explain(fmt.Errorf("connect to cluster %s: %w", c.Name, err), c)
	}
	return cl, info, nil
}
