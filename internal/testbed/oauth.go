package testbed

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// OAuthServer is a small identity provider for tests: an OAuth 2 token
// endpoint (client-credentials grant, HTTP Basic client authentication)
// that issues RS256-signed JWTs, and the JWKS endpoint that publishes the
// key a broker verifies them with.
type OAuthServer struct {
	// TokenURL and JWKSURL are the endpoints.
	TokenURL, JWKSURL string
	// ClientID and ClientSecret are the only accepted client credentials.
	ClientID, ClientSecret string
	// Subject is the tokens' "sub" claim, the broker's principal name.
	Subject string
	// Audience is the tokens' "aud" claim.
	Audience string
	// Issuer is the tokens' "iss" claim.
	Issuer string

	key *rsa.PrivateKey
	srv *http.Server

	mu       sync.Mutex
	lifetime time.Duration
	fetches  int
	failNext int
}

// StartOAuthServer starts an identity provider on 127.0.0.1 for t and
// stops it when t ends. Tokens live for lifetime.
func StartOAuthServer(t testing.TB, clientID, clientSecret, subject string, lifetime time.Duration) *OAuthServer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("generate RSA key: %v", err)
	}
	l, err := new(net.ListenConfig).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	base := "http://" + l.Addr().String()
	s := &OAuthServer{
		TokenURL: base + "/oauth2/token", JWKSURL: base + "/jwks",
		ClientID: clientID, ClientSecret: clientSecret, Subject: subject, Audience: "kafka", Issuer: "edgelink-testbed",
		key: key, lifetime: lifetime,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /oauth2/token", s.token)
	mux.HandleFunc("GET /jwks", s.jwks)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.srv.Serve(l)
	}()
	t.Cleanup(func() {
		_ = s.srv.Close()
		<-done
	})
	return s
}

// BrokerProps are the server.properties that make a broker's OAUTHBEARER
// mechanism verify this server's tokens.
func (s *OAuthServer) BrokerProps() map[string]string {
	return map[string]string{
		"listener.name.sasl_ssl.oauthbearer.sasl.server.callback.handler.class": "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler",
		"sasl.oauthbearer.jwks.endpoint.url":                                    s.JWKSURL,
		"sasl.oauthbearer.expected.audience":                                    s.Audience,
		"sasl.oauthbearer.expected.issuer":                                      s.Issuer,
	}
}

// BrokerJVMProps are the Java system properties a Kafka 4 broker needs to
// fetch the JWKS (it refuses URLs not allowed explicitly).
func (s *OAuthServer) BrokerJVMProps() map[string]string {
	return map[string]string{"org.apache.kafka.sasl.oauthbearer.allowed.urls": s.JWKSURL}
}

// Fetches returns how many tokens the endpoint issued or refused.
func (s *OAuthServer) Fetches() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fetches
}

// FailNext makes the next n token requests fail with HTTP 503.
func (s *OAuthServer) FailNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext = n
}

func (s *OAuthServer) token(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.fetches++
	fail := s.failNext > 0
	if fail {
		s.failNext--
	}
	lifetime := s.lifetime
	s.mu.Unlock()
	if fail {
		oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "try again")
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok || id != s.ClientID || secret != s.ClientSecret {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return
	}
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "client_credentials" {
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "only client_credentials")
		return
	}
	now := time.Now()
	var jti [8]byte
	_, _ = rand.Read(jti[:])
	claims := map[string]any{
		"jti": b64(jti[:]), "sub": s.Subject, "aud": s.Audience, "iss": s.Issuer,
		"iat": now.Unix(), "exp": now.Add(lifetime).Unix(),
	}
	if scope := r.PostForm.Get("scope"); scope != "" {
		claims["scope"] = scope // Kafka refuses an empty scope claim
	}
	tok, err := s.sign(claims)
	if err != nil {
		oauthError(w, http.StatusInternalServerError, "server_error", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"access_token": tok, "token_type": "Bearer", "expires_in": int(lifetime / time.Second),
	})
}

func (s *OAuthServer) jwks(w http.ResponseWriter, _ *http.Request) {
	pub := s.key.PublicKey
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "kid": "testbed", "use": "sig", "alg": "RS256",
		"n": b64(pub.N.Bytes()), "e": b64(big.NewInt(int64(pub.E)).Bytes()),
	}}})
}

// sign returns an RS256 JWT with the claims.
func (s *OAuthServer) sign(claims map[string]any) (string, error) {
	header, err := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": "testbed"})
	if err != nil {
		return "", fmt.Errorf("encode header: %w", err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("encode claims: %w", err)
	}
	signing := b64(header) + "." + b64(payload)
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, s.key, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	return signing + "." + b64(sig), nil
}

func oauthError(w http.ResponseWriter, code int, kind, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": kind, "error_description": desc})
}

func b64(b []byte) string { return strings.TrimRight(base64.RawURLEncoding.EncodeToString(b), "=") }
