package e2e_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/edgelink/edgelink/internal/testbed"
	"github.com/edgelink/edgelink/internal/verify"
)

// bundleLinkYAML is a link carried across an air gap in bundles.
func bundleLinkYAML(bundleBlock string) string {
	return `  - name: logs
    from: edge
    to: cloud
    topics:
      include: ['logs\..*']
    commit_interval: 100ms
    bundle:
` + bundleBlock
}

// edgelinkCmd runs the binary to its end and returns its exit status and
// output.
func edgelinkCmd(t *testing.T, ctx context.Context, args ...string) (int, string) {
	t.Helper()
	out, err := exec.CommandContext(ctx, binary, args...).CombinedOutput()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return code, string(out)
}

// mirrorEnds sums the high watermarks of the mirror topics at the cloud:
// what was written, committed or not.
func mirrorEnds(t *testing.T, cloud *testbed.Cluster, topics ...string) int64 {
	t.Helper()
	cl, err := cloud.Client()
	require.NoError(t, err)
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(t.Context(), topics...)
	require.NoError(t, err)
	var n int64
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil {
			n += o.Offset
		}
	})
	return n
}

// TestRealKafkaBundles: a link crosses an air gap in bundles between two
// real Kafka clusters. Records with keys, tombstones, headers, values up
// to 900 KB and transactions of which every fourth aborted are exported,
// carried, imported and acknowledged, and the checker finds them exactly
// once. On the way: a second import of the same bundle writes nothing; a
// bundle with one byte changed, a bundle signed by an unknown key, and an
// encrypted bundle without (or with the wrong) decryption key are refused
// with nothing written; a bundle out of sequence is refused, naming the
// missing one; an import killed with SIGKILL while it writes is run again
// and completes.
func TestRealKafkaBundles(t *testing.T) {
	edge := testbed.StartKafka(t, testbed.Options{Name: "edge"})
	cloud := testbed.StartKafka(t, testbed.Options{Name: "cloud"})
	ctx, cancel := context.WithTimeout(t.Context(), 6*time.Minute)
	defer cancel()
	dir := t.TempDir()
	topics := []string{"logs.app", "logs.audit"}
	createTopics(t, edge, 3, nil, topics...)
	pairs := []verify.Pair{{Source: "logs.app", Destination: "logs.app"}, {Source: "logs.audit", Destination: "logs.audit"}}

	// Keys: the site's signing key, a stranger's, the cloud's age identity
	// and another one.
	site, stranger := filepath.Join(dir, "site"), filepath.Join(dir, "stranger")
	for _, k := range []string{site, stranger} {
		code, out := edgelinkCmd(t, ctx, "keygen", "--out", k)
		require.Zero(t, code, out)
	}
	cloudID, err := age.GenerateX25519Identity()
	require.NoError(t, err)
	otherID, err := age.GenerateX25519Identity()
	require.NoError(t, err)
	cloudIDFile, otherIDFile := filepath.Join(dir, "cloud.agekey"), filepath.Join(dir, "other.agekey")
	require.NoError(t, os.WriteFile(cloudIDFile, []byte(cloudID.String()+"\n"), 0o600))
	require.NoError(t, os.WriteFile(otherIDFile, []byte(otherID.String()+"\n"), 0o600))

	block := func(lines ...string) string {
		return "      " + strings.Join(lines, "\n      ") + "\n"
	}
	siteCfg := writeConfig(t, edge, cloud, bundleLinkYAML(block("signing_key: "+site+".key", "chunk_size: 16MiB")))
	strangerCfg := writeConfig(t, edge, cloud, bundleLinkYAML(block("signing_key: "+stranger+".key")))
	encryptingCfg := writeConfig(t, edge, cloud, bundleLinkYAML(block("signing_key: "+site+".key", "encrypt_to: ["+cloudID.Recipient().String()+"]")))
	cloudCfg := writeConfig(t, edge, cloud, bundleLinkYAML(block("trusted_keys: ["+site+".pub]", "decrypt_with: ["+cloudIDFile+"]")))
	noKeyCfg := writeConfig(t, edge, cloud, bundleLinkYAML(block("trusted_keys: ["+site+".pub]")))
	wrongKeyCfg := writeConfig(t, edge, cloud, bundleLinkYAML(block("trusted_keys: ["+site+".pub]", "decrypt_with: ["+otherIDFile+"]")))

	export := func(cfg, out string) string {
		t.Helper()
		code, text := edgelinkCmd(t, ctx, "bundle", "export", "-c", cfg, "--link", "logs", "--out", out, "-q")
		require.Zero(t, code, text)
		t.Logf("export: %s", text)
		return out
	}
	importing := func(cfg string, bundles ...string) (int, string) {
		t.Helper()
		args := append([]string{"bundle", "import", "-c", cfg, "--link", "logs", "-q", "--receipt", filepath.Join(dir, "receipt.json")}, bundles...)
		code, text := edgelinkCmd(t, ctx, args...)
		t.Logf("import %s: exit %d: %s", strings.Join(bundles, " "), code, text)
		return code, text
	}
	ack := func() {
		t.Helper()
		code, text := edgelinkCmd(t, ctx, "bundle", "ack", "-c", siteCfg, "--link", "logs", filepath.Join(dir, "receipt.json"))
		require.Zero(t, code, text)
		t.Logf("ack: %s", text)
	}

	// Bundle 1: plain records and transactions with aborts.
	var l load
	require.NoError(t, l.produce(ctx, t, edge, topics, 20000, 1))
	require.NoError(t, l.transact(ctx, edge, "logs.audit", 40, 50, 2))
	b1 := export(siteCfg, filepath.Join(dir, "b1"))

	// Refused before anything is written: a changed byte, an unknown
	// signer.
	tampered := filepath.Join(dir, "b1-tampered")
	require.NoError(t, os.CopyFS(tampered, os.DirFS(b1)))
	chunk := filepath.Join(tampered, "chunk-000001.elb")
	data, err := os.ReadFile(chunk)
	require.NoError(t, err)
	data[len(data)/2] ^= 0x01
	require.NoError(t, os.WriteFile(chunk, data, 0o600))
	code, text := importing(cloudCfg, tampered)
	require.Equal(t, 1, code)
	require.Contains(t, text, "altered")
	require.Contains(t, text, "chunk-000001.elb")
	require.Contains(t, text, "nothing was written")
	code, text = importing(cloudCfg, export(strangerCfg, filepath.Join(dir, "b1-stranger")))
	require.Equal(t, 1, code)
	require.Contains(t, text, "not signed by a trusted key")
	require.Zero(t, mirrorEnds(t, cloud, topics...), "nothing written by refused imports")

	// Imported, then imported again: the second writes nothing.
	code, text = importing(cloudCfg, b1)
	require.Zero(t, code, text)
	rep := checkUntilClean(t, edge, cloud, pairs, 10*time.Second, nil)
	requireClean(t, rep)
	written := mirrorEnds(t, cloud, topics...)
	code, text = importing(cloudCfg, b1)
	require.Zero(t, code, text)
	require.Contains(t, text, "nothing written")
	ack()

	// Bundle 2, encrypted to the cloud: refused without its key and with
	// the wrong one.
	require.NoError(t, l.produce(ctx, t, edge, topics, 5000, 3))
	b2 := export(encryptingCfg, filepath.Join(dir, "b2"))
	for _, cfg := range []string{noKeyCfg, wrongKeyCfg} {
		code, text = importing(cfg, b2)
		require.Equal(t, 1, code)
		require.Contains(t, text, "cannot be decrypted")
	}
	// The second import of bundle 1 added only markers.
	require.LessOrEqual(t, mirrorEnds(t, cloud, topics...)-written, int64(100), "nothing written by refused imports")
	code, text = importing(cloudCfg, b2)
	require.Zero(t, code, text)
	requireClean(t, checkUntilClean(t, edge, cloud, pairs, 10*time.Second, nil))
	receipt2, err := os.ReadFile(filepath.Join(dir, "receipt.json"))
	require.NoError(t, err)
	ack()

	// Bundle 3 is carried; its receipt is lost, so the site's next export
	// is bundle 3 again (with more records). A receipt claiming bundle 4
	// was imported elsewhere makes the site export bundle 5, which the
	// cloud refuses: bundle 4 is missing.
	require.NoError(t, l.produce(ctx, t, edge, topics, 2000, 4))
	b3 := export(siteCfg, filepath.Join(dir, "b3"))
	require.NoError(t, l.produce(ctx, t, edge, topics, 2000, 5))
	b3again := export(siteCfg, filepath.Join(dir, "b3-again"))
	code, text = importing(cloudCfg, b3)
	require.Zero(t, code, text)
	code, text = importing(cloudCfg, b3again)
	require.Zero(t, code, text)
	requireClean(t, checkUntilClean(t, edge, cloud, pairs, 10*time.Second, nil))
	ack()
	require.NoError(t, l.produce(ctx, t, edge, topics, 1000, 6))
	b4 := export(siteCfg, filepath.Join(dir, "b4"))
	var forged map[string]any
	require.NoError(t, json.Unmarshal(receipt2, &forged))
	var m4 struct {
		ID       string `json:"id"`
		Sequence int64  `json:"sequence"`
		Ranges   []any  `json:"ranges"`
	}
	mb, err := os.ReadFile(filepath.Join(b4, "manifest.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(mb, &m4))
	require.EqualValues(t, 4, m4.Sequence)
	forged["sequence"], forged["bundle_id"], forged["bundle_hash"], forged["ranges"] = 4, m4.ID, manifestHash(t, b4), m4.Ranges
	fb, err := json.Marshal(forged)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "receipt.json"), fb, 0o600))
	ack()
	require.NoError(t, l.produce(ctx, t, edge, topics, 1000, 7))
	b5 := export(siteCfg, filepath.Join(dir, "b5"))
	code, text = importing(cloudCfg, b5)
	require.Equal(t, 1, code)
	require.Contains(t, text, "out of sequence")
	require.Contains(t, text, "4 is missing")
	code, text = importing(cloudCfg, b4, b5)
	require.Zero(t, code, text)
	requireClean(t, checkUntilClean(t, edge, cloud, pairs, 10*time.Second, nil))
	ack()

	// A big bundle whose import is killed while it writes, once it has
	// committed some of it, then run again.
	require.NoError(t, l.produce(ctx, t, edge, topics, 120000, 8))
	b6 := export(siteCfg, filepath.Join(dir, "b6"))
	before := mirrorEnds(t, cloud, topics...)
	watch, err := cloud.Client()
	require.NoError(t, err)
	defer watch.Close()
	committed := func() int64 {
		ends, err := kadm.NewClient(watch).ListCommittedOffsets(ctx, topics...)
		require.NoError(t, err)
		var n int64
		ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
		return n
	}
	imp := startProcess(t, "import", nil, "bundle", "import", "-c", cloudCfg, "--link", "logs", "-q", "--receipt", filepath.Join(dir, "receipt.json"), b6)
	for committed() <= before+1000 {
		select {
		case <-imp.done:
			t.Fatal("the import ended before it could be killed")
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		default:
		}
	}
	require.NoError(t, imp.cmd.Process.Signal(syscall.SIGKILL))
	<-imp.done
	rep = checkUntilClean(t, edge, cloud, pairs, 0, nil)
	require.NotZero(t, rep.Lost, "the import was killed before it wrote everything")
	require.Zero(t, rep.Duplicated+rep.Reordered+rep.Phantom)
	code, text = importing(cloudCfg, b6)
	require.Zero(t, code, text)
	require.Regexp(t, `[1-9]\d* held already`, text, "the import killed had committed some records, and they were not written again")
	requireClean(t, checkUntilClean(t, edge, cloud, pairs, 10*time.Second, nil))
	ack()

	// A backlog cut into bundles of at most 1 MiB of payload.
	require.NoError(t, l.produce(ctx, t, edge, topics, 1500, 10))
	for i := 7; ; i++ {
		out := filepath.Join(dir, fmt.Sprintf("cut-%d", i))
		code, text := edgelinkCmd(t, ctx, "bundle", "export", "-c", siteCfg, "--link", "logs", "--out", out, "--max-bytes", "1MiB", "-q")
		require.Zero(t, code, text)
		code, text = importing(cloudCfg, out)
		require.Zero(t, code, text)
		ack()
		if !strings.Contains(text, "nothing written") {
			continue
		}
		require.Greater(t, i, 8, "the backlog took several bundles")
		break
	}
	requireClean(t, checkUntilClean(t, edge, cloud, pairs, 10*time.Second, nil))

	// The site's agent shows the last export and the last receipt, and as
	// its backlog what the cloud has not acknowledged.
	require.NoError(t, l.produce(ctx, t, edge, topics, 500, 9))
	last := export(siteCfg, filepath.Join(dir, "last"))
	a := startAgent(t, "site", siteCfg)
	testbed.Eventually(t, 30*time.Second, func() error {
		txt, err := statusText(ctx, a)
		if err != nil {
			return err
		}
		var st struct {
			Links []struct {
				State   string `json:"state"`
				Backlog struct {
					Records int64 `json:"records"`
				} `json:"backlog"`
				Bundles *struct {
					LastExport struct {
						Sequence int64  `json:"sequence"`
						Records  int64  `json:"records"`
						Dir      string `json:"dir"`
					} `json:"last_export"`
					LastReceipt struct {
						Sequence int64 `json:"sequence"`
					} `json:"last_receipt"`
				} `json:"bundles"`
			} `json:"links"`
		}
		if err := json.Unmarshal([]byte(txt), &st); err != nil {
			return err
		}
		if len(st.Links) != 1 || st.Links[0].Bundles == nil {
			return fmt.Errorf("no bundles in the status: %s", txt)
		}
		ls := st.Links[0]
		if ls.State != "live" || ls.Bundles.LastExport.Dir != last || ls.Bundles.LastReceipt.Sequence != ls.Bundles.LastExport.Sequence-1 ||
			ls.Backlog.Records < 500 {
			return fmt.Errorf("status: %+v", ls)
		}
		return nil
	})
	stopAgents(t, a)
	t.Logf("%d records produced, %d in committed transactions, %d aborted", l.records.Load(), l.committed.Load(), l.aborted.Load())
}

// manifestHash is the hash of a bundle's manifest: its identity.
func manifestHash(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	require.NoError(t, err)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
