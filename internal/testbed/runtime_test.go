package testbed

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestManifestDetectsTampering(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a.jar"), []byte("a"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "b.jar"), []byte("b"), 0o644))
	require.ErrorIs(t, verifyManifest(dir), os.ErrNotExist)
	require.NoError(t, writeManifest(dir))
	require.NoError(t, verifyManifest(dir))

	require.NoError(t, os.WriteFile(filepath.Join(dir, "b.jar"), []byte("B"), 0o644))
	require.ErrorContains(t, verifyManifest(dir), "b.jar: checksum mismatch")

	require.NoError(t, writeManifest(dir))
	require.NoError(t, os.Remove(filepath.Join(dir, "a.jar")))
	require.ErrorContains(t, verifyManifest(dir), "manifest lists 2 jars, directory holds 1")
}

func TestBrokerPropertiesSecurity(t *testing.T) {
	c := &Cluster{
		opts: Options{Security: &Security{Users: map[string]string{"u": "p"}, MutualTLS: true}},
		TLS:  &TLSFiles{CAFile: "/ca.pem", ServerKeystoreFile: "/ks.pem"},
	}
	b := &Broker{NodeID: 1, Addr: "127.0.0.1:1", SASLAddr: "127.0.0.1:2", controllerAddr: "127.0.0.1:3", cluster: c}
	c.Brokers = []*Broker{b}
	props := b.properties()
	for _, want := range []string{
		"listeners=PLAINTEXT://127.0.0.1:1,CONTROLLER://127.0.0.1:3,SASL_SSL://127.0.0.1:2\n",
		"controller.quorum.voters=1@127.0.0.1:3\n",
		`user_u="p";`,
		"listener.name.sasl_ssl.ssl.client.auth=required\n",
		"sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256,PLAIN\n",
		"offsets.topic.replication.factor=1\n",
	} {
		require.True(t, strings.Contains(props, want), "missing %q in\n%s", want, props)
	}
}

// A cluster id starting with "-" is taken for an option by kafka-storage.
func TestClusterIDNeverStartsWithDash(t *testing.T) {
	for range 5000 {
		id := newClusterID()
		require.Len(t, id, 22)
		require.NotEqual(t, byte('-'), id[0], id)
	}
}
