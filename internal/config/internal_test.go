package config

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestExpand(t *testing.T) {
	env := map[string]string{"A": "alpha", "EMPTY": "", "NESTED": "${A}", "X_1": "x"}
	lookup := func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	}
	for _, tc := range []struct {
		in        string
		want      string
		vars      []string
		unset     []string
		malformed string
	}{
		{in: "plain", want: "plain"},
		{in: "${A}", want: "alpha", vars: []string{"A"}},
		{in: "pre-${A}-${X_1}-post", want: "pre-alpha-x-post", vars: []string{"A", "X_1"}},
		{in: "${EMPTY}", want: "", vars: []string{"EMPTY"}},
		{in: "${NESTED}", want: "${A}", vars: []string{"NESTED"}},
		{in: "$${A}", want: "${A}"},
		{in: "$$${A}", want: "$${A}"},
		{in: "$$$${A}", want: "$$${A}"},
		{in: "cost $5, $A, $", want: "cost $5, $A, $"},
		{in: "${B}${B}${C}", want: "", unset: []string{"B", "C"}},
		{in: "${A", want: "${A", malformed: "${A"},
		{in: "${}", want: "${}", malformed: "${}"},
		{in: "${1A}", want: "${1A}", malformed: "${1A}"},
		{in: "${A-B}x", want: "${A-B}x", malformed: "${A-B}"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			x := expand(tc.in, lookup)
			require.Equal(t, tc.want, x.value)
			require.Equal(t, tc.vars, x.vars)
			require.Equal(t, tc.unset, x.unset)
			require.Equal(t, tc.malformed, x.malformed)
		})
	}
}

func TestSuggest(t *testing.T) {
	keys := []string{"name", "from", "to", "topics", "rename", "start", "delivery"}
	for _, tc := range []struct{ in, want string }{
		{"nmae", "name"},
		{"Name", "name"},
		{"TOPICS", "topics"},
		{"topic", "topics"},
		{"delivry", "delivery"},
		{"delivey", "delivery"},
		{"tp", "to"},
		{"id", ""},
		{"retries", ""},
		{"", ""},
	} {
		t.Run(tc.in, func(t *testing.T) {
			require.Equal(t, tc.want, suggest(tc.in, keys))
		})
	}
	require.Equal(t, "tls", suggest("tsl", clusterBlock.names()))
	require.Equal(t, "exactly-once", suggest("exactly_once", []string{"exactly-once", "at-least-once"}))
}

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"abc", "", 3},
		{"", "abc", 3},
		{"kitten", "sitting", 3},
		{"tls", "tsl", 1},
		{"bootstrp", "bootstrap", 1},
		{"ca", "abc", 3},
		{"héllo", "hello", 1},
	} {
		require.Equal(t, tc.want, editDistance(tc.a, tc.b), "%q %q", tc.a, tc.b)
		require.Equal(t, tc.want, editDistance(tc.b, tc.a), "%q %q", tc.b, tc.a)
	}
}

func TestCheckHostPort(t *testing.T) {
	for _, tc := range []struct {
		addr   string
		listen bool
		msg    string
	}{
		{addr: "127.0.0.1:9092"},
		{addr: "broker-1.example.com:9093"},
		{addr: "[::1]:9092"},
		{addr: "[fe80::1%eth0]:9092"},
		{addr: "kafka_1:9092"},
		{addr: ":9644", listen: true},
		{addr: ":0", listen: true},
		{addr: "localhost:0", listen: true},
		{addr: ":9092", msg: `":9092" has no host`},
		{addr: "host:0", msg: `port 0 in "host:0" is out of range`},
		{addr: "host:65536", msg: `port 65536 in "host:65536" is out of range`},
		{addr: "host:65536", listen: true, msg: `port 65536 in "host:65536" is out of range`},
		{addr: "host:http", msg: `port "http" in "host:http" is not a number`},
		{addr: "host:", msg: `port "" in "host:" is not a number`},
		{addr: "host", msg: `"host" has no port`},
		{addr: "::1:9092", msg: `"::1:9092" is not a host:port address`},
		{addr: "[::1]", msg: `"[::1]" is not a host:port address`},
		{addr: "[host]:1", msg: `"[host]:1" is not a host:port address`},
		{addr: "ho st:1", msg: `invalid host "ho st" in "ho st:1"`},
		{addr: "SASL_SSL://host:1", msg: `"SASL_SSL://host:1" is not a host:port address`},
		{addr: "9644", listen: true, msg: `"9644" is not a host:port address`},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			msg, _ := checkHostPort(tc.addr, tc.listen)
			require.Equal(t, tc.msg, msg)
		})
	}
}

func TestQuote(t *testing.T) {
	require.Equal(t, `"sensors\.("`, quote(`sensors\.(`))
	require.Equal(t, `"a\"b"`, quote(`a"b`))
	require.Equal(t, `"a\tb"`, quote("a\tb"))
	require.Equal(t, `"\xff"`, quote("\xff"))
	long := strings.Repeat("a", 150)
	require.Equal(t, `"`+long[:100]+`..."`, quote(long))
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]int64{
		"2Mbit/s": 250_000, "512 kbit/s": 64_000, "1MB/s": 1_000_000, "100 B/s": 100,
		"1.5Mbit/s": 187_500, "10Mbps": 1_250_000, "1Gbit/s": 125_000_000,
	} {
		got, err := ParseRate(in)
		if err != nil || got != want {
			t.Errorf("ParseRate(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "2", "fast", "2 Mbit", "-1MB/s", "0MB/s", "1 bit/s"} {
		if _, err := ParseRate(in); err == nil {
			t.Errorf("ParseRate(%q): want an error", in)
		}
	}
}
