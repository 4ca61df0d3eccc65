package testbed

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// TLSFiles are PEM files of a throw-away certificate authority, a server
// certificate for the brokers and a client certificate for mutual TLS.
type TLSFiles struct {
	// CAFile is the CA certificate that signed both certificates.
	CAFile string
	// CAKeyFile is the CA's PKCS#8 key, for [TLSFiles.IssueCert].
	CAKeyFile string
	// ServerKeystoreFile holds the server's PKCS#8 key followed by its
	// certificate chain (Kafka's PEM key store format).
	ServerKeystoreFile string
	// ClientCertFile and ClientKeyFile are the client's certificate and key.
	ClientCertFile, ClientKeyFile string
}

// ClientConfig returns a TLS configuration that trusts the CA and presents
// the client certificate.
func (f *TLSFiles) ClientConfig() (*tls.Config, error) {
	caPEM, err := os.ReadFile(f.CAFile)
	if err != nil {
		return nil, fmt.Errorf("read CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("parse CA %s: no certificate", f.CAFile)
	}
	cert, err := tls.LoadX509KeyPair(f.ClientCertFile, f.ClientKeyFile)
	if err != nil {
		return nil, fmt.Errorf("load client certificate: %w", err)
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// WriteTLSFiles creates a CA, a server certificate valid for hosts (IP
// addresses or DNS names) and a client certificate, and writes them to dir.
func WriteTLSFiles(dir string, hosts ...string) (*TLSFiles, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create tls directory: %w", err)
	}
	now := time.Now()
	caKey, caCert, caDER, err := newCert(&x509.Certificate{
		Subject:               pkix.Name{CommonName: "edgelink test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(30 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, nil, nil)
	if err != nil {
		return nil, err
	}
	server := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kafka"},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(30 * 24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			server.IPAddresses = append(server.IPAddresses, ip)
		} else {
			server.DNSNames = append(server.DNSNames, h)
		}
	}
	serverKey, _, serverDER, err := newCert(server, caCert, caKey)
	if err != nil {
		return nil, err
	}
	clientKey, _, clientDER, err := newCert(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "edgelink"},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(30 * 24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, caCert, caKey)
	if err != nil {
		return nil, err
	}
	f := &TLSFiles{
		CAFile:             filepath.Join(dir, "ca.pem"),
		CAKeyFile:          filepath.Join(dir, "ca-key.pem"),
		ServerKeystoreFile: filepath.Join(dir, "server-keystore.pem"),
		ClientCertFile:     filepath.Join(dir, "client.pem"),
		ClientKeyFile:      filepath.Join(dir, "client-key.pem"),
	}
	serverKeyPEM, err := keyPEM(serverKey)
	if err != nil {
		return nil, err
	}
	clientKeyPEM, err := keyPEM(clientKey)
	if err != nil {
		return nil, err
	}
	caKeyPEM, err := keyPEM(caKey)
	if err != nil {
		return nil, err
	}
	writes := []struct {
		path string
		data []byte
	}{
		{f.CAFile, certPEM(caDER)},
		{f.CAKeyFile, caKeyPEM},
		{f.ServerKeystoreFile, append(append(serverKeyPEM, certPEM(serverDER)...), certPEM(caDER)...)},
		{f.ClientCertFile, certPEM(clientDER)},
		{f.ClientKeyFile, clientKeyPEM},
	}
	for _, w := range writes {
		if err := os.WriteFile(w.path, w.data, 0o600); err != nil {
			return nil, fmt.Errorf("write %s: %w", w.path, err)
		}
	}
	return f, nil
}

// newCert creates a key and a certificate from tmpl, signed by parent (self-signed when nil).
func newCert(tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*ecdsa.PrivateKey, *x509.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("generate serial: %w", err)
	}
	tmpl.SerialNumber = serial
	signer := key
	if parent == nil {
		parent = tmpl
	} else {
		signer = parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("create certificate %s: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("parse certificate: %w", err)
	}
	return key, cert, der, nil
}

func certPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func keyPEM(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// CertSpec describes a certificate for [TLSFiles.IssueCert].
type CertSpec struct {
	// Name is the subject's common name and the files' base name.
	Name string
	// Hosts are the IP addresses and DNS names a server certificate is
	// valid for (none for a client certificate).
	Hosts []string
	// NotBefore and NotAfter bound its validity; zero means an hour ago
	// and 30 days from now. A NotAfter in the past gives an expired certificate.
	NotBefore, NotAfter time.Time
	// Client makes a client certificate instead of a server certificate.
	Client bool
}

// IssueCert writes a certificate signed by the CA and its key next to the
// CA's files: NAME.pem and NAME-key.pem. Tests use it for expired or
// wrong-host certificates.
func (f *TLSFiles) IssueCert(spec CertSpec) (certFile, keyFile string, err error) {
	caCertPEM, err := os.ReadFile(f.CAFile)
	if err != nil {
		return "", "", fmt.Errorf("read CA: %w", err)
	}
	caKeyPEM, err := os.ReadFile(f.CAKeyFile)
	if err != nil {
		return "", "", fmt.Errorf("read CA key: %w", err)
	}
	pair, err := tls.X509KeyPair(caCertPEM, caKeyPEM)
	if err != nil {
		return "", "", fmt.Errorf("load CA: %w", err)
	}
	caKey, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return "", "", fmt.Errorf("CA key is %T, want ECDSA", pair.PrivateKey)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: spec.Name},
		NotBefore:   spec.NotBefore,
		NotAfter:    spec.NotAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = now.Add(-time.Hour)
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = now.Add(30 * 24 * time.Hour)
	}
	if spec.Client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	for _, h := range spec.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	key, _, der, err := newCert(tmpl, pair.Leaf, caKey)
	if err != nil {
		return "", "", err
	}
	kp, err := keyPEM(key)
	if err != nil {
		return "", "", err
	}
	dir := filepath.Dir(f.CAFile)
	certFile, keyFile = filepath.Join(dir, spec.Name+".pem"), filepath.Join(dir, spec.Name+"-key.pem")
	if err := os.WriteFile(certFile, certPEM(der), 0o600); err != nil {
		return "", "", fmt.Errorf("write %s: %w", certFile, err)
	}
	if err := os.WriteFile(keyFile, kp, 0o600); err != nil {
		return "", "", fmt.Errorf("write %s: %w", keyFile, err)
	}
	return certFile, keyFile, nil
}
