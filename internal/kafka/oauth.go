package kafka

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/oauth"

	"github.com/edgelink/edgelink/internal/config"
)

// Token refresh policy: a token is replaced once this fraction of its
// lifetime has passed; failed fetches are retried with backoff.
const (
	tokenRefreshFraction = 0.8
	tokenMinBackoff      = 250 * time.Millisecond
	tokenMaxBackoff      = 30 * time.Second
	tokenFetchAttempts   = 3
	tokenHTTPTimeout     = 10 * time.Second
	// tokenDefaultLifetime is assumed when the endpoint omits expires_in.
	tokenDefaultLifetime = 5 * time.Minute
)

// TokenError is an error answer from an OAuth 2 token endpoint.
type TokenError struct {
	// URL is the token endpoint, without query or user information.
	URL string
	// Status is the HTTP status line, e.g. "401 Unauthorized".
	Status string
	// Code is the HTTP status code.
	Code int
	// OAuthError and Description are the "error" and "error_description"
	// fields of the answer (RFC 6749 section 5.2), when present.
	OAuthError, Description string
}

func (e *TokenError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "token endpoint %s answered HTTP %s", e.URL, e.Status)
	if e.OAuthError != "" {
		fmt.Fprintf(&b, ": %s", e.OAuthError)
		if e.Description != "" {
			fmt.Fprintf(&b, " (%s)", e.Description)
		}
	}
	switch {
	case e.OAuthError == "invalid_client" || e.Code == http.StatusUnauthorized:
		b.WriteString(": check sasl.client_id and sasl.client_secret (or client_secret_file)")
	case e.OAuthError == "invalid_scope":
		b.WriteString(": check sasl.scope")
	case e.OAuthError == "unauthorized_client" || e.OAuthError == "unsupported_grant_type":
		b.WriteString(": the identity provider must allow the client_credentials grant for this client")
	case e.Code == http.StatusNotFound:
		b.WriteString(": check sasl.token_url")
	}
	return b.String()
}

// permanent reports whether retrying the same request cannot help.
func (e *TokenError) permanent() bool {
	return e.Code >= 400 && e.Code < 500 && e.Code != http.StatusTooManyRequests && e.Code != http.StatusRequestTimeout
}

// TokenSource fetches OAuth 2 access tokens with the client-credentials
// grant and caches them. A token is refreshed once 80% of its lifetime has
// passed; while a refresh fails, the cached token is used until it expires
// and the fetch is retried with capped exponential backoff. It is safe for
// concurrent use.
type TokenSource struct {
	tokenURL, clientID, secret, secretFile, scope string
	client                                        *http.Client
	now                                           func() time.Time

	mu        sync.Mutex
	token     string
	expires   time.Time
	refreshAt time.Time
	// After a failed fetch, no new fetch starts before retryAt; lastErr is
	// returned meanwhile when no valid token is cached.
	retryAt time.Time
	backoff time.Duration
	lastErr error
	fetches int
}

// NewTokenSource returns the token source for an OAUTHBEARER sasl block.
// The client secret file, if any, is read at every fetch so a rotated
// secret is picked up.
func NewTokenSource(s *config.SASL) *TokenSource {
	return &TokenSource{
		tokenURL: s.TokenURL, clientID: s.ClientID, secret: s.ClientSecret,
		secretFile: s.ClientSecretFile, scope: s.Scope,
		client: &http.Client{Timeout: tokenHTTPTimeout},
		now:    time.Now,
	}
}

// tokenSources shares one TokenSource per identity across the clients and
// sessions of the process, so a reconnect does not fetch a new token.
var tokenSources = struct {
	sync.Mutex
	m map[string]*TokenSource
}{m: make(map[string]*TokenSource)}

// sharedTokenSource returns the process-wide TokenSource for s.
func sharedTokenSource(s *config.SASL) *TokenSource {
	sum := sha256.Sum256([]byte(strings.Join([]string{s.TokenURL, s.ClientID, s.ClientSecret, s.ClientSecretFile, s.Scope}, "\x00")))
	key := hex.EncodeToString(sum[:])
	tokenSources.Lock()
	defer tokenSources.Unlock()
	ts, ok := tokenSources.m[key]
	if !ok {
		ts = NewTokenSource(s)
		tokenSources.m[key] = ts
	}
	return ts
}

// Mechanism returns the OAUTHBEARER SASL mechanism that authenticates
// with this source's tokens.
func (ts *TokenSource) Mechanism() sasl.Mechanism {
	return oauth.Oauth(func(ctx context.Context) (oauth.Auth, error) {
		tok, err := ts.Token(ctx)
		if err != nil {
			return oauth.Auth{}, err
		}
		return oauth.Auth{Token: tok}, nil
	})
}

// Fetches returns how many times a token was requested from the endpoint.
func (ts *TokenSource) Fetches() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.fetches
}

// Token returns a valid access token: the cached one until it is due for
// refresh, otherwise a new one from the token endpoint.
func (ts *TokenSource) Token(ctx context.Context) (string, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	now := ts.now()
	valid := ts.token != "" && now.Before(ts.expires)
	if valid && now.Before(ts.refreshAt) {
		return ts.token, nil
	}
	if now.Before(ts.retryAt) {
		// A recent fetch failed: keep using the cached token, or report
		// the failure, until the backoff has passed.
		if valid {
			return ts.token, nil
		}
		return "", ts.lastErr
	}
	// Attempts within this call are bounded: a caller that has no token
	// at all waits a little; one that has a token does not wait at all.
	attempts := tokenFetchAttempts
	if valid {
		attempts = 1
	}
	var err error
	for i := range attempts {
		if i > 0 {
			select {
			case <-ctx.Done():
				return "", fmt.Errorf("fetch OAuth token: %w (last error: %w)", ctx.Err(), err)
			case <-time.After(tokenMinBackoff << (i - 1)):
			}
		}
		var tok string
		var lifetime time.Duration
		tok, lifetime, err = ts.fetch(ctx)
		if err == nil {
			now = ts.now()
			ts.token, ts.expires = tok, now.Add(lifetime)
			ts.refreshAt = now.Add(time.Duration(float64(lifetime) * tokenRefreshFraction))
			ts.retryAt, ts.backoff, ts.lastErr = time.Time{}, 0, nil
			return tok, nil
		}
		if te, ok := errors.AsType[*TokenError](err); ok && te.permanent() {
			break
		}
	}
	ts.backoff = min(max(2*ts.backoff, tokenMinBackoff), tokenMaxBackoff)
	ts.retryAt = ts.now().Add(ts.backoff)
	ts.lastErr = err
	if valid {
		// The cached token still works; the refresh is retried later.
		return ts.token, nil
	}
	return "", err
}

// tokenResponse is a token endpoint's answer, success or error.
type tokenResponse struct {
	AccessToken      string          `json:"access_token"`
	TokenType        string          `json:"token_type"`
	ExpiresIn        json.RawMessage `json:"expires_in"`
	Error            string          `json:"error"`
	ErrorDescription string          `json:"error_description"`
}

// fetch requests one token; it returns the token and its lifetime.
func (ts *TokenSource) fetch(ctx context.Context) (string, time.Duration, error) {
	ts.fetches++
	where := redactURL(ts.tokenURL)
	secret := ts.secret
	if ts.secretFile != "" {
		b, err := os.ReadFile(ts.secretFile)
		if err != nil {
			return "", 0, fmt.Errorf("read sasl.client_secret_file: %w", err)
		}
		secret = strings.TrimSpace(string(b))
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	if ts.scope != "" {
		form.Set("scope", ts.scope)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ts.tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", 0, fmt.Errorf("token endpoint %s: %w", where, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// RFC 6749 section 2.3.1: both parts form-encoded, then HTTP Basic.
	req.SetBasicAuth(url.QueryEscape(ts.clientID), url.QueryEscape(secret))
	resp, err := ts.client.Do(req)
	if err != nil {
		// The url.Error names the URL, which may hold a query; replace it.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return "", 0, fmt.Errorf("request OAuth token from %s: %w", where, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", 0, fmt.Errorf("read answer of token endpoint %s: %w", where, err)
	}
	var tr tokenResponse
	jsonErr := json.Unmarshal(body, &tr)
	if resp.StatusCode != http.StatusOK {
		return "", 0, &TokenError{URL: where, Status: resp.Status, Code: resp.StatusCode, OAuthError: tr.Error, Description: tr.ErrorDescription}
	}
	if jsonErr != nil {
		return "", 0, fmt.Errorf("token endpoint %s: answer is not a JSON token response: %w", where, jsonErr)
	}
	if tr.AccessToken == "" {
		return "", 0, fmt.Errorf("token endpoint %s: answer has no access_token", where)
	}
	if tr.TokenType != "" && !strings.EqualFold(tr.TokenType, "bearer") {
		return "", 0, fmt.Errorf("token endpoint %s: token_type %q, want Bearer", where, tr.TokenType)
	}
	lifetime := tokenDefaultLifetime
	if len(tr.ExpiresIn) > 0 {
		// Some endpoints send the number as a string.
		var secs json.Number
		if err := json.Unmarshal(tr.ExpiresIn, &secs); err != nil {
			var s string
			if json.Unmarshal(tr.ExpiresIn, &s) != nil {
				return "", 0, fmt.Errorf("token endpoint %s: expires_in %s is not a number", where, tr.ExpiresIn)
			}
			secs = json.Number(s)
		}
		n, err := secs.Float64()
		if err != nil || n <= 0 {
			return "", 0, fmt.Errorf("token endpoint %s: expires_in %s is not a positive number", where, tr.ExpiresIn)
		}
		lifetime = time.Duration(n * float64(time.Second))
	}
	return tr.AccessToken, lifetime, nil
}

// redactURL drops user information and the query from u, which may hold
// credentials.
func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(invalid URL)"
	}
	p.User, p.RawQuery, p.Fragment = nil, "", ""
	return p.String()
}

// TokenSubject returns the "sub" claim of a JWT access token, or "" when
// the token is not a JWT. It does not verify the token.
func TokenSubject(token string) string {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return ""
	}
	var claims struct {
		Sub string `json:"sub"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return ""
	}
	return claims.Sub
}
