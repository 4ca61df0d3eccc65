package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/edgelink/edgelink/internal/config"
)

// ExplainedError is a connection or authentication failure with what it
// means and what to change. Its message reads "problem: advice (cause)".
type ExplainedError struct {
	// Problem names what went wrong, e.g. "SASL authentication failed".
	Problem string
	// Advice says what to change.
	Advice string
	// Err is the error as it happened.
	Err error
}

func (e *ExplainedError) Error() string {
	return e.Problem + ": " + e.Advice + " (" + e.Err.Error() + ")"
}

func (e *ExplainedError) Unwrap() error { return e.Err }

// CertValidityError reports a client certificate used outside its
// validity period.
type CertValidityError struct {
	// File is tls.cert_file.
	File string
	// NotBefore and NotAfter bound the certificate's validity.
	NotBefore, NotAfter time.Time
	// Now is when the check was made.
	Now time.Time
}

func (e *CertValidityError) Error() string {
	if e.Now.Before(e.NotBefore) {
		return fmt.Sprintf("client certificate %s is not valid before %s", e.File, e.NotBefore.UTC().Format(time.RFC3339))
	}
	return fmt.Sprintf("client certificate %s expired at %s", e.File, e.NotAfter.UTC().Format(time.RFC3339))
}

// checkValidity returns a *CertValidityError when cert is not valid at now.
func checkValidity(cert *x509.Certificate, file string, now time.Time) error {
	if cert == nil || (!now.Before(cert.NotBefore) && !now.After(cert.NotAfter)) {
		return nil
	}
	return &CertValidityError{File: file, NotBefore: cert.NotBefore, NotAfter: cert.NotAfter, Now: now}
}

// probeTimeout bounds the extra connection Explain opens to ask a broker
// which SASL mechanisms it enables.
const probeTimeout = 5 * time.Second

// Explain returns err as an *ExplainedError when it is a failure an
// operator fixes in the configuration or at the broker: wrong credentials,
// an untrusted, expired or mismatched certificate, TLS against a plaintext
// port or the reverse, a SASL mechanism the broker does not enable, an
// unknown host, a refused or unanswered connection, missing ACLs. Other
// errors, and nil, come back unchanged.
//
// When the broker does not enable the configured SASL mechanism, Explain
// asks the brokers of clusters (those that use SASL) which mechanisms they
// enable, with one short extra connection each, and lists them.
func Explain(err error, clusters ...*config.Cluster) error {
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[*ExplainedError](err); ok {
		return err
	}
	problem, advice := explain(err, clusters)
	if problem == "" {
		return err
	}
	return &ExplainedError{Problem: problem, Advice: advice, Err: err}
}

func explain(err error, clusters []*config.Cluster) (problem, advice string) {
	msg := err.Error()
	var (
		unknownCA  x509.UnknownAuthorityError
		hostErr    x509.HostnameError
		invalidErr x509.CertificateInvalidError
		recordErr  tls.RecordHeaderError
	)
	switch {
	case errors.Is(err, kerr.SaslAuthenticationFailed):
		if strings.Contains(msg, "OAUTHBEARER") || strings.Contains(msg, "invalid_token") || usesOAuth(clusters) {
			return "SASL authentication failed", "the broker rejected the OAuth token: check that the broker trusts the token's issuer and keys (JWKS) and accepts its audience, scope and subject"
		}
		return "SASL authentication failed", "the broker rejected the user name or password: check sasl.username and sasl.password (or password_file); " +
			"a SCRAM user must exist on the cluster for this mechanism (kafka-configs.sh --describe --entity-type users)"
	case errors.Is(err, kerr.UnsupportedSaslMechanism):
		return "SASL mechanism not enabled on the broker", mechanismAdvice(clusters)
	case errors.As(err, &unknownCA):
		issuer := ""
		if unknownCA.Cert != nil {
			issuer = " (" + unknownCA.Cert.Issuer.String() + ")"
		}
		return "the broker's certificate is signed by an unknown authority",
			"set tls.ca_file to the PEM file of the CA that signed it" + issuer + "; without ca_file the system's roots are used"
	case errors.As(err, &hostErr):
		names := certNames(hostErr.Certificate)
		return fmt.Sprintf("the broker's certificate does not name host %q", hostErr.Host),
			fmt.Sprintf("it is valid for %s: use one of these names in bootstrap, or set tls.server_name to one of them", names)
	case errors.As(err, &invalidErr) && invalidErr.Reason == x509.Expired:
		when := ""
		if c := invalidErr.Cert; c != nil {
			when = fmt.Sprintf(" (valid %s to %s)", c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339))
		}
		return "the broker's certificate has expired or is not yet valid" + when,
			"renew the broker's certificate, or check this machine's clock"
	case errors.As(err, new(*CertValidityError)):
		return "the client certificate (tls.cert_file) is outside its validity period",
			"renew tls.cert_file and tls.key_file, or check this machine's clock"
	case strings.Contains(msg, "remote error: tls: "):
		return "the broker rejected the TLS connection (" + msg[strings.Index(msg, "remote error: tls: ")+len("remote error: "):] + ")",
			"when the broker requires mutual TLS, set tls.cert_file and tls.key_file to a certificate signed by a CA the broker trusts and valid now; otherwise check the broker's TLS settings"
	case errors.As(err, &recordErr), tlsAgainstPlaintext(err):
		return "TLS to a port that does not speak TLS",
			"this listener is plaintext: remove the tls block (or set tls.enabled: false), or use the broker's TLS port in bootstrap"
	case plaintextAgainstTLS(err):
		return "the broker closed the connection before answering: it probably expects TLS",
			"add a tls block (tls: {ca_file: ...}) for this listener, or use the broker's plaintext port in bootstrap"
	case strings.Contains(msg, "SASL is required but not provided"):
		return "the broker closed the connection: the listener probably requires SASL",
			"add a sasl block with the mechanism and credentials the listener expects"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused" + opAddr(err),
			"nothing listens there: check the cluster's bootstrap addresses and that the broker is running"
	case errors.As(err, new(*net.DNSError)):
		var dns *net.DNSError
		errors.As(err, &dns)
		return fmt.Sprintf("host %q not found", dns.Name),
			"check the host names in the cluster's bootstrap (and, for brokers found through metadata, the brokers' advertised.listeners) and this machine's DNS"
	case dialTimeout(err):
		return "no answer while connecting" + opAddr(err),
			"a firewall may drop the traffic, or the address is wrong: check the cluster's bootstrap"
	case errors.Is(err, kerr.TopicAuthorizationFailed), errors.Is(err, kerr.ClusterAuthorizationFailed),
		errors.Is(err, kerr.TransactionalIDAuthorizationFailed), errors.Is(err, kerr.GroupAuthorizationFailed):
		return "not authorized", "the cluster's ACLs do not allow this: run `edgelink check -c FILE --connect` to list the ACLs each link needs"
	}
	return "", ""
}

// usesOAuth reports whether the only SASL cluster among clusters uses
// OAUTHBEARER.
func usesOAuth(clusters []*config.Cluster) bool {
	var sasl []*config.Cluster
	for _, c := range clusters {
		if c != nil && c.SASL != nil {
			sasl = append(sasl, c)
		}
	}
	return len(sasl) == 1 && sasl[0].SASL.Mechanism == config.MechanismOAuthBearer
}

// tlsAgainstPlaintext recognises a TLS handshake that a plaintext listener
// ended: Kafka reads the ClientHello as an oversized request and closes.
func tlsAgainstPlaintext(err error) bool {
	if fe, ok := errors.AsType[*kgo.ErrFirstReadEOF](err); ok && strings.Contains(fe.Error(), "after a dial") {
		return true
	}
	return strings.Contains(err.Error(), "tls handshake with") &&
		(errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.ErrUnexpectedEOF))
}

// plaintextAgainstTLS recognises a plaintext request that a TLS listener
// ended (or answered with a TLS alert).
func plaintextAgainstTLS(err error) bool {
	msg := err.Error()
	if fe, ok := errors.AsType[*kgo.ErrFirstReadEOF](err); ok && strings.Contains(fe.Error(), "requires TLS") {
		return true
	}
	return strings.Contains(msg, "appear to be a tls alert record")
}

func dialTimeout(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" && op.Timeout() {
		return true
	}
	return strings.Contains(err.Error(), "unable to dial") && errors.Is(err, context.DeadlineExceeded)
}

// opAddr returns " to ADDR" for a network error that names its address.
func opAddr(err error) string {
	var op *net.OpError
	if errors.As(err, &op) && op.Addr != nil {
		return " to " + op.Addr.String()
	}
	return ""
}

func certNames(c *x509.Certificate) string {
	if c == nil {
		return "other names"
	}
	var names []string
	names = append(names, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 && c.Subject.CommonName != "" {
		return fmt.Sprintf("only the common name %q, which is not used for verification (the certificate needs a subject alternative name)", c.Subject.CommonName)
	}
	return strings.Join(names, ", ")
}

// mechanismAdvice lists the mechanisms the SASL clusters' brokers enable.
func mechanismAdvice(clusters []*config.Cluster) string {
	var parts []string
	for _, c := range clusters {
		if c == nil || c.SASL == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
		mechs, err := BrokerMechanisms(ctx, c)
		cancel()
		switch {
		case err != nil:
			parts = append(parts, fmt.Sprintf("cluster %s uses %s; its brokers could not be asked which mechanisms they enable (%v)", c.Name, c.SASL.Mechanism, err))
		case slices.Contains(mechs, c.SASL.Mechanism):
			continue
		default:
			parts = append(parts, fmt.Sprintf("cluster %s uses %s but its broker enables only %s: set sasl.mechanism to one of them, or add %s to the listener's sasl.enabled.mechanisms",
				c.Name, c.SASL.Mechanism, strings.Join(mechs, ", "), c.SASL.Mechanism))
		}
	}
	if len(parts) == 0 {
		return "set sasl.mechanism to a mechanism the listener enables (sasl.enabled.mechanisms on the broker)"
	}
	return strings.Join(parts, "; ")
}

// BrokerMechanisms asks the first reachable bootstrap broker of c which
// SASL mechanisms its listener enables (a SaslHandshake request naming no
// real mechanism, on a connection of its own, with TLS when configured).
func BrokerMechanisms(ctx context.Context, c *config.Cluster) ([]string, error) {
	var tlsCfg *tls.Config
	if c.TLS != nil && c.TLS.Enabled {
		cfg, err := tlsConfig(c.TLS)
		if err != nil {
			return nil, err
		}
		tlsCfg = cfg
	}
	dial := Dial{Timeout: probeTimeout}.dialer(tlsCfg)
	var errs []error
	for _, addr := range c.Bootstrap {
		mechs, err := brokerMechanisms(ctx, dial, addr)
		if err == nil {
			return mechs, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", addr, err))
	}
	return nil, errors.Join(errs...)
}

func brokerMechanisms(ctx context.Context, dial DialFunc, addr string) ([]string, error) {
	conn, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer func() { _ = conn.Close() }()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	req := kmsg.NewPtrSASLHandshakeRequest()
	req.Version = 1
	req.Mechanism = "EDGELINK-PROBE"
	const corrID = 1
	wire := kmsg.NewRequestFormatter(kmsg.FormatterClientID("edgelink")).AppendRequest(nil, req, corrID)
	if _, err := conn.Write(wire); err != nil {
		return nil, fmt.Errorf("send SaslHandshake: %w", err)
	}
	var head [8]byte // size, correlation id
	if _, err := io.ReadFull(conn, head[:]); err != nil {
		return nil, fmt.Errorf("read SaslHandshake answer: %w", err)
	}
	size := binary.BigEndian.Uint32(head[:4])
	if size < 4 || size > 1<<20 || binary.BigEndian.Uint32(head[4:]) != corrID {
		return nil, errors.New("read SaslHandshake answer: not a Kafka response")
	}
	body := make([]byte, size-4)
	if _, err := io.ReadFull(conn, body); err != nil {
		return nil, fmt.Errorf("read SaslHandshake answer: %w", err)
	}
	resp := req.ResponseKind().(*kmsg.SASLHandshakeResponse)
	resp.Version = req.Version
	if err := resp.ReadFrom(body); err != nil {
		return nil, fmt.Errorf("decode SaslHandshake answer: %w", err)
	}
	return resp.SupportedMechanisms, nil
}
