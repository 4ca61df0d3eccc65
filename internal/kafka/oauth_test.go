package kafka

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/testbed"
)

// fakeClock is a settable clock for a TokenSource.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newTestSource(idp *testbed.OAuthServer, secret string) (*TokenSource, *fakeClock) {
	ts := NewTokenSource(&config.SASL{
		Mechanism: config.MechanismOAuthBearer, TokenURL: idp.TokenURL,
		ClientID: idp.ClientID, ClientSecret: secret, Scope: "kafka",
	})
	clock := &fakeClock{t: time.Now()}
	ts.now = clock.now
	return ts, clock
}

func TestTokenSourceCachesAndRefreshesAt80Percent(t *testing.T) {
	idp := testbed.StartOAuthServer(t, "plant-1", "s3cret", "plant-1", 100*time.Second)
	ts, clock := newTestSource(idp, "s3cret")
	ctx := t.Context()

	first, err := ts.Token(ctx)
	require.NoError(t, err)
	require.Equal(t, "plant-1", TokenSubject(first))
	again, err := ts.Token(ctx)
	require.NoError(t, err)
	require.Equal(t, first, again, "cached")
	require.Equal(t, 1, idp.Fetches())

	clock.advance(79 * time.Second)
	_, err = ts.Token(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, idp.Fetches(), "still cached at 79% of the lifetime")

	clock.advance(2 * time.Second)
	_, err = ts.Token(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, idp.Fetches(), "refreshed past 80% of the lifetime")
}

func TestTokenSourceRetriesWithBackoff(t *testing.T) {
	idp := testbed.StartOAuthServer(t, "plant-1", "s3cret", "plant-1", 100*time.Second)
	ts, clock := newTestSource(idp, "s3cret")
	ctx := t.Context()

	// No token yet: two failures are retried within the call.
	idp.FailNext(2)
	tok, err := ts.Token(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, tok)
	require.Equal(t, 3, idp.Fetches())

	// Due for refresh but the endpoint fails: the valid token is kept,
	// and no new request is made until the backoff has passed.
	clock.advance(85 * time.Second)
	idp.FailNext(100)
	kept, err := ts.Token(ctx)
	require.NoError(t, err)
	require.Equal(t, tok, kept)
	require.Equal(t, 4, idp.Fetches())
	_, err = ts.Token(ctx)
	require.NoError(t, err)
	require.Equal(t, 4, idp.Fetches(), "backing off")

	// Expired while the endpoint still fails: the error is reported.
	clock.advance(20 * time.Second)
	_, err = ts.Token(ctx)
	require.ErrorContains(t, err, "answered HTTP 503 Service Unavailable: temporarily_unavailable (try again)")

	// The endpoint recovers: after the backoff a new token is fetched.
	idp.FailNext(0)
	clock.advance(tokenMaxBackoff)
	fresh, err := ts.Token(ctx)
	require.NoError(t, err)
	require.NotEqual(t, tok, fresh)
}

func TestTokenSourceErrors(t *testing.T) {
	idp := testbed.StartOAuthServer(t, "plant-1", "s3cret", "plant-1", time.Minute)
	t.Run("wrong secret", func(t *testing.T) {
		ts, _ := newTestSource(idp, "wrong-secret")
		_, err := ts.Token(t.Context())
		require.EqualError(t, err, "token endpoint "+idp.TokenURL+" answered HTTP 401 Unauthorized: invalid_client (client authentication failed): "+
			"check sasl.client_id and sasl.client_secret (or client_secret_file)")
		require.NotContains(t, err.Error(), "wrong-secret")
		require.Equal(t, 1, idp.Fetches(), "a refused client is not retried at once")
	})
	t.Run("wrong URL", func(t *testing.T) {
		ts := NewTokenSource(&config.SASL{TokenURL: idp.TokenURL + "/nope?key=hidden", ClientID: "plant-1", ClientSecret: "s3cret"})
		_, err := ts.Token(t.Context())
		require.ErrorContains(t, err, "answered HTTP 404 Not Found: check sasl.token_url")
		require.NotContains(t, err.Error(), "hidden")
	})
	t.Run("unreachable", func(t *testing.T) {
		ts := NewTokenSource(&config.SASL{TokenURL: "http://127.0.0.1:1/token", ClientID: "plant-1", ClientSecret: "s3cret"})
		_, err := ts.Token(t.Context())
		require.ErrorContains(t, err, "request OAuth token from http://127.0.0.1:1/token")
		require.ErrorContains(t, err, "connection refused")
	})
}

func TestTokenSourceReadsSecretFileAtEachFetch(t *testing.T) {
	idp := testbed.StartOAuthServer(t, "plant-1", "rotated", "plant-1", 100*time.Second)
	file := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(file, []byte("old\n"), 0o600))
	ts := NewTokenSource(&config.SASL{TokenURL: idp.TokenURL, ClientID: "plant-1", ClientSecretFile: file})
	_, err := ts.Token(t.Context())
	require.ErrorContains(t, err, "invalid_client")

	require.NoError(t, os.WriteFile(file, []byte("  rotated\r\n"), 0o600)) // trimmed
	ts.mu.Lock()
	ts.retryAt = time.Time{}
	ts.mu.Unlock()
	tok, err := ts.Token(t.Context())
	require.NoError(t, err)
	require.Equal(t, "plant-1", TokenSubject(tok))
}
