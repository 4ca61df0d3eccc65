package observe_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/edgelink/edgelink/internal/observe"
	"github.com/edgelink/edgelink/internal/status"
	"github.com/edgelink/edgelink/internal/testbed"
)

// TestAgentControl: with an AgentControl, kill-agent and start-agent act
// on the named link behind the token and a same-origin check, like cut and
// restore, and the status API says whether the link's other agent is
// killed; without one, neither the routes nor agent_killed exist.
func TestAgentControl(t *testing.T) {
	src := testbed.StartFake(t, kfake.SeedTopics(1, "sensors.temp"))
	dst := testbed.StartFake(t)
	cfg := parseConfig(t, src.ListenAddrs(), dst.ListenAddrs(), "  token: s3cret\n")

	t.Run("with", func(t *testing.T) {
		agents := newFakeAgents("up")
		f := startWith(t, cfg, observe.Options{Control: newFakeControl("up"), AgentControl: agents})

		for name, tc := range map[string]struct {
			method string
			auth   bool
			hdr    map[string]string
			want   int
		}{
			"no token":     {http.MethodPost, false, nil, http.StatusUnauthorized},
			"cross-origin": {http.MethodPost, true, map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
			"foreign host": {http.MethodPost, true, map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
			"GET":          {http.MethodGet, true, nil, http.StatusMethodNotAllowed},
		} {
			t.Run(name, func(t *testing.T) {
				for _, action := range []string{"kill-agent", "start-agent"} {
					code, body := f.do(t, tc.method, "/api/v1/links/up/"+action, tc.auth, tc.hdr)
					require.Equal(t, tc.want, code, "%s: %s", action, body)
				}
				require.Zero(t, agents.calls(), "refused requests reach no control")
			})
		}

		code, body := f.do(t, http.MethodPost, "/api/v1/links/up/kill-agent", true, nil)
		require.Equal(t, http.StatusOK, code, body)
		require.JSONEq(t, `{"link":"up","agent_killed":true}`, body)
		require.True(t, agents.AgentKilled("up"))
		_, raw := f.get(t, "/api/v1/status", true)
		require.Contains(t, raw, `"agent_killed": true`)
		var resp observe.StatusResponse
		require.NoError(t, json.Unmarshal([]byte(raw), &resp))
		require.Len(t, resp.Links, 1)
		require.Equal(t, "up", resp.Links[0].Name)
		require.True(t, *resp.Links[0].AgentKilled)
		require.True(t, resp.Controls)
		require.False(t, *resp.Links[0].LinkCut)
		st := f.status(t) // the body is a status.Snapshot too
		require.Len(t, st.Links, 1)
		require.Equal(t, "up", st.Links[0].Name)

		code, body = f.do(t, http.MethodPost, "/api/v1/links/up/start-agent", true, nil)
		require.Equal(t, http.StatusOK, code, body)
		require.JSONEq(t, `{"link":"up","agent_killed":false}`, body)
		_, raw = f.get(t, "/api/v1/status", true)
		require.Contains(t, raw, `"agent_killed": false`)

		for _, action := range []string{"kill-agent", "start-agent"} {
			code, body = f.do(t, http.MethodPost, "/api/v1/links/nope/"+action, true, nil)
			require.Equal(t, http.StatusNotFound, code, body)
			require.Contains(t, body, `unknown link`)
		}
		agents.fail(errors.New("start the second agent: the demo is stopping"))
		code, body = f.do(t, http.MethodPost, "/api/v1/links/up/start-agent", true, nil)
		require.Equal(t, http.StatusInternalServerError, code, body)
		require.Contains(t, body, "the demo is stopping")
	})

	t.Run("alone", func(t *testing.T) {
		// Without a Control: the agent actions only.
		f := startWith(t, cfg, observe.Options{AgentControl: newFakeAgents("up")})
		code, _ := f.do(t, http.MethodPost, "/api/v1/links/up/cut", true, nil)
		require.Contains(t, []int{http.StatusNotFound, http.StatusMethodNotAllowed}, code)
		code, body := f.do(t, http.MethodPost, "/api/v1/links/up/kill-agent", true, nil)
		require.Equal(t, http.StatusOK, code, body)
		var resp observe.StatusResponse
		_, raw := f.get(t, "/api/v1/status", true)
		require.NoError(t, json.Unmarshal([]byte(raw), &resp))
		require.False(t, resp.Controls)
		require.Nil(t, resp.Links[0].LinkCut)
		require.True(t, *resp.Links[0].AgentKilled)
	})

	t.Run("without", func(t *testing.T) {
		f := startWith(t, cfg, observe.Options{Control: newFakeControl("up")})
		for _, action := range []string{"kill-agent", "start-agent"} {
			code, _ := f.do(t, http.MethodPost, "/api/v1/links/up/"+action, true, nil)
			require.Contains(t, []int{http.StatusNotFound, http.StatusMethodNotAllowed}, code, action)
		}
		_, raw := f.get(t, "/api/v1/status", true)
		require.NotContains(t, raw, "agent_killed")
		var st status.Snapshot
		require.NoError(t, json.Unmarshal([]byte(raw), &st))
		require.True(t, st.Controls)
	})
}

// fakeAgents records kill and start calls.
type fakeAgents struct {
	mu     sync.Mutex
	killed map[string]bool
	n      int
	err    error
}

func newFakeAgents(names ...string) *fakeAgents {
	a := &fakeAgents{killed: make(map[string]bool)}
	for _, n := range names {
		a.killed[n] = false
	}
	return a
}

func (a *fakeAgents) set(name string, killed bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.n++
	if _, ok := a.killed[name]; !ok {
		return fmt.Errorf("link %q: %w", name, observe.ErrUnknownLink)
	}
	if a.err != nil {
		return a.err
	}
	a.killed[name] = killed
	return nil
}

func (a *fakeAgents) fail(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.err = err
}

func (a *fakeAgents) calls() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n
}

func (a *fakeAgents) KillAgent(name string) error  { return a.set(name, true) }
func (a *fakeAgents) StartAgent(name string) error { return a.set(name, false) }
func (a *fakeAgents) AgentKilled(name string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.killed[name]
}
