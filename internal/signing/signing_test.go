package signing_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/edgelink/edgelink/internal/signing"
)

func TestFingerprint(t *testing.T) {
	// The key of the all-zero seed, pinned so that key ids never change.
	priv := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	require.Equal(t, "ed25519:139e3940e64b5491", signing.Fingerprint(priv.Public().(ed25519.PublicKey)))
}

func TestKeyName(t *testing.T) {
	for path, want := range map[string]string{
		"ops-anna.key":         "ops-anna",
		"/etc/edgelink/ci.pub": "ci",
		"keys/ops.anna.pub":    "ops.anna",
		"noext":                "noext",
	} {
		require.Equal(t, want, signing.KeyName(path), path)
	}
}

func TestSignVerify(t *testing.T) {
	priv := generate(t)
	pub := priv.Public().(ed25519.PublicKey)
	other := generate(t).Public().(ed25519.PublicKey)
	payload := []byte("site: plant-1\nlinks: []\n")
	sig := signing.Sign(priv, signing.DomainConfigRevision, payload)
	require.True(t, signing.Verify(pub, signing.DomainConfigRevision, payload, sig))

	tampered := bytes.Clone(payload)
	tampered[3] ^= 1
	badSig := bytes.Clone(sig)
	badSig[0] ^= 1
	for _, tc := range []struct {
		name    string
		pub     ed25519.PublicKey
		domain  string
		payload []byte
		sig     []byte
	}{
		{"payload altered", pub, signing.DomainConfigRevision, tampered, sig},
		{"signature altered", pub, signing.DomainConfigRevision, payload, badSig},
		{"signature truncated", pub, signing.DomainConfigRevision, payload, sig[:10]},
		{"no signature", pub, signing.DomainConfigRevision, payload, nil},
		{"other domain", pub, signing.DomainBundle, payload, sig},
		{"domain moved into payload", pub, "edgelink/config-revision", append([]byte("/v1\x00"), payload...), sig},
		{"NUL in domain", pub, signing.DomainConfigRevision + "\x00", payload, sig},
		{"other key", other, signing.DomainConfigRevision, payload, sig},
		{"not a key", ed25519.PublicKey("short"), signing.DomainConfigRevision, payload, sig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.False(t, signing.Verify(tc.pub, tc.domain, tc.payload, tc.sig))
		})
	}

	require.Panics(t, func() { signing.Sign(priv, "a\x00b", payload) })
}

func TestSigner(t *testing.T) {
	priv := generate(t)
	s := signing.NewSigner("ops-anna", priv)
	pub := priv.Public().(ed25519.PublicKey)
	require.Equal(t, "ops-anna", s.Name())
	require.Equal(t, pub, s.Public())
	require.Equal(t, signing.Fingerprint(pub), s.KeyID())
	sig := s.Sign(signing.DomainBundle, []byte("bundle"))
	require.True(t, signing.Verify(pub, signing.DomainBundle, []byte("bundle"), sig))
}

func TestWriteKeyPair(t *testing.T) {
	base := filepath.Join(t.TempDir(), "ops-anna")
	require.NoError(t, signing.WriteKeyPair(base))

	if runtime.GOOS != "windows" {
		requireMode(t, base+".key", 0o600)
		requireMode(t, base+".pub", 0o644)
	}
	key, err := os.ReadFile(base + ".key")
	require.NoError(t, err)
	require.Contains(t, string(key), "-----BEGIN PRIVATE KEY-----\n")
	pubPEM, err := os.ReadFile(base + ".pub")
	require.NoError(t, err)
	require.Contains(t, string(pubPEM), "-----BEGIN PUBLIC KEY-----\n")

	s, err := signing.LoadPrivate(base + ".key")
	require.NoError(t, err)
	pub, err := signing.LoadPublic(base + ".pub")
	require.NoError(t, err)
	require.Equal(t, "ops-anna", s.Name())
	require.Equal(t, pub, s.Public())
	require.Equal(t, signing.Fingerprint(pub), s.KeyID())

	payload := []byte("revision 7")
	require.True(t, signing.Verify(pub, signing.DomainConfigRevision, payload, s.Sign(signing.DomainConfigRevision, payload)))

	// Each pair is new.
	base2 := filepath.Join(t.TempDir(), "ops-anna")
	require.NoError(t, signing.WriteKeyPair(base2))
	pub2, err := signing.LoadPublic(base2 + ".pub")
	require.NoError(t, err)
	require.NotEqual(t, pub, pub2)
}

func TestWriteKeyPairRefusesOverwrite(t *testing.T) {
	t.Run("both exist", func(t *testing.T) {
		base := filepath.Join(t.TempDir(), "ops")
		require.NoError(t, signing.WriteKeyPair(base))
		key, pub := readFile(t, base+".key"), readFile(t, base+".pub")

		err := signing.WriteKeyPair(base)
		require.ErrorIs(t, err, fs.ErrExist)
		require.EqualError(t, err, "refusing to overwrite "+base+".key: file already exists")
		require.Equal(t, key, readFile(t, base+".key"))
		require.Equal(t, pub, readFile(t, base+".pub"))
	})
	t.Run("public key exists", func(t *testing.T) {
		base := filepath.Join(t.TempDir(), "ops")
		require.NoError(t, os.WriteFile(base+".pub", []byte("keep me"), 0o644))

		err := signing.WriteKeyPair(base)
		require.ErrorIs(t, err, fs.ErrExist)
		require.EqualError(t, err, "refusing to overwrite "+base+".pub: file already exists")
		require.Equal(t, "keep me", readFile(t, base+".pub"))
		require.NoFileExists(t, base+".key", "a half-written pair is removed")
	})
	t.Run("no name", func(t *testing.T) {
		require.Error(t, signing.WriteKeyPair(""))
	})
	t.Run("no directory", func(t *testing.T) {
		err := signing.WriteKeyPair(filepath.Join(t.TempDir(), "missing", "ops"))
		require.ErrorIs(t, err, fs.ErrNotExist)
	})
}

func TestLoadPrivateRefusesOpenFile(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix file modes")
	}
	base := filepath.Join(t.TempDir(), "ops")
	require.NoError(t, signing.WriteKeyPair(base))
	for _, tc := range []struct {
		mode fs.FileMode
		ok   bool
	}{{0o600, true}, {0o400, true}, {0o644, false}, {0o640, false}, {0o604, false}, {0o660, false}} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			require.NoError(t, os.Chmod(base+".key", tc.mode))
			_, err := signing.LoadPrivate(base + ".key")
			if tc.ok {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, fmt.Sprintf("load private key %s.key: mode %04o ", base, tc.mode))
			require.ErrorContains(t, err, "gives its group or others access")
			require.ErrorContains(t, err, "(run chmod 600 "+base+".key)")
		})
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "ops")
	require.NoError(t, signing.WriteKeyPair(base))

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	rsaPKCS8, err := x509.MarshalPKCS8PrivateKey(rsaKey)
	require.NoError(t, err)
	rsaPKIX, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	require.NoError(t, err)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	ecPKCS8, err := x509.MarshalPKCS8PrivateKey(ecKey)
	require.NoError(t, err)

	file := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, data, 0o600))
		return p
	}
	pemFile := func(name, typ string, der []byte) string {
		return file(name, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
	}
	for _, tc := range []struct {
		name    string
		private bool
		path    string
		err     string
	}{
		{"private: missing", true, filepath.Join(dir, "none.key"), "load private key: open " + filepath.Join(dir, "none.key") + ": no such file or directory"},
		{"private: not PEM", true, file("junk.key", []byte("hello")), "not a PEM key file"},
		{"private: public key", true, base + ".pub", "this is a public key, a private key is needed: pass NAME.key, not NAME.pub"},
		{"private: RSA PKCS#8", true, pemFile("rsa8.key", "PRIVATE KEY", rsaPKCS8), "this is an RSA key: edgelink keys are ed25519"},
		{"private: RSA PKCS#1", true, pemFile("rsa1.key", "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey)), "this is an RSA key: edgelink keys are ed25519"},
		{"private: ECDSA", true, pemFile("ec.key", "PRIVATE KEY", ecPKCS8), "this is an ECDSA key: edgelink keys are ed25519"},
		{"private: encrypted", true, pemFile("enc.key", "ENCRYPTED PRIVATE KEY", []byte{1}), "this private key is encrypted"},
		{"private: certificate", true, pemFile("cert.key", "CERTIFICATE", []byte{1}), `PEM block "CERTIFICATE": want "PRIVATE KEY"`},
		{"private: corrupt", true, pemFile("bad.key", "PRIVATE KEY", []byte{1, 2, 3}), "parse private key: "},
		{"public: missing", false, filepath.Join(dir, "none.pub"), "load public key: open " + filepath.Join(dir, "none.pub") + ": no such file or directory"},
		{"public: not PEM", false, file("junk.pub", []byte("ssh-ed25519 AAAA")), "not a PEM key file"},
		{"public: private key", false, base + ".key", "this is a private key, a public key is needed: pass NAME.pub"},
		{"public: RSA", false, pemFile("rsa.pub", "PUBLIC KEY", rsaPKIX), "this is an RSA key: edgelink keys are ed25519"},
		{"public: corrupt", false, pemFile("bad.pub", "PUBLIC KEY", []byte{1, 2, 3}), "parse public key: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.private {
				_, err = signing.LoadPrivate(tc.path)
			} else {
				_, err = signing.LoadPublic(tc.path)
			}
			require.ErrorContains(t, err, tc.err)
			if !errors.Is(err, fs.ErrNotExist) {
				require.ErrorContains(t, err, tc.path, "the error names the file")
			}
		})
	}
}

func TestKeyring(t *testing.T) {
	dir := t.TempDir()
	anna, ben, eve := filepath.Join(dir, "ops-anna"), filepath.Join(dir, "ops-ben"), filepath.Join(dir, "eve")
	for _, b := range []string{anna, ben, eve} {
		require.NoError(t, signing.WriteKeyPair(b))
	}
	ring, err := signing.LoadKeyring([]string{anna + ".pub", ben + ".pub", anna + ".pub"})
	require.NoError(t, err)
	require.Equal(t, 2, ring.Len(), "a key listed twice is trusted once")

	annaKey, err := signing.LoadPrivate(anna + ".key")
	require.NoError(t, err)
	eveKey, err := signing.LoadPrivate(eve + ".key")
	require.NoError(t, err)
	name, ok := ring.Name(annaKey.KeyID())
	require.True(t, ok)
	require.Equal(t, "ops-anna", name)
	_, ok = ring.Name(eveKey.KeyID())
	require.False(t, ok)
	require.Len(t, ring.KeyIDs(), 2)
	require.Contains(t, ring.KeyIDs(), annaKey.KeyID())

	payload := []byte("revision 12")
	sig := annaKey.Sign(signing.DomainConfigRevision, payload)
	require.NoError(t, ring.Verify(annaKey.KeyID(), signing.DomainConfigRevision, payload, sig))

	tampered := bytes.Clone(payload)
	tampered[len(tampered)-1] ^= 1
	eveSig := eveKey.Sign(signing.DomainConfigRevision, payload)
	for _, tc := range []struct {
		name, keyID, domain string
		payload, sig        []byte
		want                error
		msg                 string
	}{
		{
			"one byte altered", annaKey.KeyID(), signing.DomainConfigRevision, tampered, sig, signing.ErrBadSignature,
			"key " + annaKey.KeyID() + " (ops-anna): signature does not match",
		},
		{
			"replayed as a bundle", annaKey.KeyID(), signing.DomainBundle, payload, sig, signing.ErrBadSignature,
			"key " + annaKey.KeyID() + " (ops-anna): signature does not match",
		},
		{
			"signed by another trusted key", signing.Fingerprint(mustPublic(t, ben+".pub")), signing.DomainConfigRevision, payload, sig, signing.ErrBadSignature,
			"(ops-ben): signature does not match",
		},
		{
			"untrusted key", eveKey.KeyID(), signing.DomainConfigRevision, payload, eveSig, signing.ErrUntrustedKey,
			"key " + eveKey.KeyID() + ": not a trusted key",
		},
		{
			"untrusted key claiming a trusted id", annaKey.KeyID(), signing.DomainConfigRevision, payload, eveSig, signing.ErrBadSignature,
			"signature does not match",
		},
		{
			"unknown key id", "ed25519:0000000000000000", signing.DomainConfigRevision, payload, sig, signing.ErrUntrustedKey,
			"key ed25519:0000000000000000: not a trusted key",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ring.Verify(tc.keyID, tc.domain, tc.payload, tc.sig)
			require.ErrorIs(t, err, tc.want)
			require.ErrorContains(t, err, tc.msg)
		})
	}

	t.Run("empty keyring", func(t *testing.T) {
		for _, r := range []*signing.Keyring{nil, {}} {
			require.ErrorIs(t, r.Verify(annaKey.KeyID(), signing.DomainConfigRevision, payload, sig), signing.ErrUntrustedKey)
			require.Zero(t, r.Len())
			require.Empty(t, r.KeyIDs())
		}
		r, err := signing.LoadKeyring(nil)
		require.NoError(t, err)
		require.ErrorIs(t, r.Verify(annaKey.KeyID(), signing.DomainConfigRevision, payload, sig), signing.ErrUntrustedKey)
	})
	t.Run("private key listed", func(t *testing.T) {
		_, err := signing.LoadKeyring([]string{anna + ".pub", ben + ".key"})
		require.ErrorContains(t, err, "load public key "+ben+".key: this is a private key")
	})
}

// TestOpenSSL checks that openssl reads the key files and that keys
// openssl generates load.
func TestOpenSSL(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not on PATH")
	}
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.CommandContext(t.Context(), openssl, args...).CombinedOutput()
		require.NoError(t, err, "openssl %v: %s", args, out)
		return string(out)
	}
	dir := t.TempDir()
	base := filepath.Join(dir, "ops")
	require.NoError(t, signing.WriteKeyPair(base))
	run("pkey", "-in", base+".key", "-noout")
	run("pkey", "-pubin", "-in", base+".pub", "-noout")
	require.Equal(t, readFile(t, base+".pub"), run("pkey", "-in", base+".key", "-pubout"),
		"openssl derives the same public key file")

	// A key generated by openssl.
	key := filepath.Join(dir, "ossl.key")
	run("genpkey", "-algorithm", "ed25519", "-out", key)
	require.NoError(t, os.Chmod(key, 0o600))
	run("pkey", "-in", key, "-pubout", "-out", filepath.Join(dir, "ossl.pub"))
	s, err := signing.LoadPrivate(key)
	require.NoError(t, err)
	pub, err := signing.LoadPublic(filepath.Join(dir, "ossl.pub"))
	require.NoError(t, err)
	require.Equal(t, pub, s.Public())

	// openssl verifies a signature over domain, NUL, payload.
	payload := []byte("revision 3")
	msg := filepath.Join(dir, "msg")
	require.NoError(t, os.WriteFile(msg, append([]byte(signing.DomainConfigRevision+"\x00"), payload...), 0o600))
	sig := filepath.Join(dir, "sig")
	require.NoError(t, os.WriteFile(sig, s.Sign(signing.DomainConfigRevision, payload), 0o600))
	require.Contains(t, run("pkeyutl", "-verify", "-pubin", "-inkey", filepath.Join(dir, "ossl.pub"), "-rawin", "-in", msg, "-sigfile", sig),
		"Signature Verified Successfully")
}

func generate(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	priv, err := signing.Generate()
	require.NoError(t, err)
	return priv
}

func mustPublic(t *testing.T, path string) ed25519.PublicKey {
	t.Helper()
	pub, err := signing.LoadPublic(path)
	require.NoError(t, err)
	return pub
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

func requireMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, want, fi.Mode().Perm(), "%s: mode %04o, want %04o", path, fi.Mode().Perm(), want)
}
