package signing

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// PEM block types of the key files.
const (
	privateBlock = "PRIVATE KEY"
	publicBlock  = "PUBLIC KEY"
)

// Key file modes.
const (
	privateMode fs.FileMode = 0o600
	publicMode  fs.FileMode = 0o644
)

// Generate returns a new ed25519 private key.
func Generate() (ed25519.PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate ed25519 key: %w", err)
	}
	return priv, nil
}

// KeyName returns the name of the key in file path: its base name without
// extension.
func KeyName(path string) string {
	base := filepath.Base(path)
	return strings.TrimSuffix(base, filepath.Ext(base))
}

// WriteKeyPair generates a key pair and writes it to base+".key" (the
// private key, mode 0600) and base+".pub" (the public key, mode 0644). It
// never overwrites a file: when either exists it writes nothing and
// returns an error wrapping [fs.ErrExist].
func WriteKeyPair(base string) error {
	if base == "" {
		return errors.New("write key pair: no file name")
	}
	priv, err := Generate()
	if err != nil {
		return err
	}
	privPEM, err := marshalPrivate(priv)
	if err != nil {
		return err
	}
	pubPEM, err := marshalPublic(priv.Public().(ed25519.PublicKey))
	if err != nil {
		return err
	}
	keyPath, pubPath := base+".key", base+".pub"
	kf, err := create(keyPath, privateMode)
	if err != nil {
		return err
	}
	pf, err := create(pubPath, publicMode)
	if err != nil {
		kf.Close()
		_ = os.Remove(keyPath)
		return err
	}
	if err := errors.Join(write(kf, privPEM), write(pf, pubPEM)); err != nil {
		_ = os.Remove(keyPath)
		_ = os.Remove(pubPath)
		return err
	}
	return nil
}

// create creates path exclusively with mode, whatever the umask.
func create(path string, mode fs.FileMode) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("refusing to overwrite %s: %w", path, fs.ErrExist)
	}
	if err != nil {
		return nil, fmt.Errorf("create key file: %w", err)
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		_ = os.Remove(path)
		return nil, fmt.Errorf("create key file: %w", err)
	}
	return f, nil
}

// write writes data to f, syncs and closes it.
func write(f *os.File, data []byte) error {
	_, err := f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write key file: %w", err)
	}
	return nil
}

func marshalPrivate(priv ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: privateBlock, Bytes: der}), nil
}

func marshalPublic(pub ed25519.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encode public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: publicBlock, Bytes: der}), nil
}

// LoadPrivate reads the private key file at path, as written by
// [WriteKeyPair]. Like ssh, it refuses a file that its group or others may
// access.
func LoadPrivate(path string) (*Signer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load private key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("load private key: %w", err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("load private key: %w", err)
	}
	priv, err := ParsePrivate(data)
	if err != nil {
		return nil, fmt.Errorf("load private key %s: %w", path, err)
	}
	// Checked after parsing, so that a public key passed by mistake is
	// reported as such rather than as too open.
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("load private key %s: mode %04o gives its group or others access; "+
			"a private key must be accessible by its owner only (run chmod 600 %s)", path, perm, path)
	}
	return NewSigner(KeyName(path), priv), nil
}

// LoadPublic reads the public key file at path, as written by
// [WriteKeyPair].
func LoadPublic(path string) (ed25519.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load public key: %w", err)
	}
	pub, err := ParsePublic(data)
	if err != nil {
		return nil, fmt.Errorf("load public key %s: %w", path, err)
	}
	return pub, nil
}

// ParsePrivate parses an ed25519 private key in a PEM "PRIVATE KEY" block
// (PKCS#8).
func ParsePrivate(data []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("not a PEM key file: want an ed25519 private key written by edgelink keygen")
	}
	switch block.Type {
	case privateBlock:
	case publicBlock:
		return nil, errors.New("this is a public key, a private key is needed: pass NAME.key, not NAME.pub")
	case "RSA PRIVATE KEY":
		return nil, errors.New("this is an RSA key: edgelink keys are ed25519 (generate one with edgelink keygen)")
	case "EC PRIVATE KEY":
		return nil, errors.New("this is an ECDSA key: edgelink keys are ed25519 (generate one with edgelink keygen)")
	case "ENCRYPTED PRIVATE KEY":
		return nil, errors.New("this private key is encrypted: edgelink reads unencrypted keys only (protect the file instead)")
	default:
		return nil, fmt.Errorf("PEM block %q: want %q holding an ed25519 key (generate one with edgelink keygen)", block.Type, privateBlock)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse private key: %w", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("this is an %s key: edgelink keys are ed25519 (generate one with edgelink keygen)", keyType(k))
	}
	return priv, nil
}

// ParsePublic parses an ed25519 public key in a PEM "PUBLIC KEY" block
// (PKIX).
func ParsePublic(data []byte) (ed25519.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("not a PEM key file: want an ed25519 public key written by edgelink keygen")
	}
	switch block.Type {
	case publicBlock:
	case privateBlock, "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "OPENSSH PRIVATE KEY":
		return nil, errors.New("this is a private key, a public key is needed: pass NAME.pub, " +
			"and keep NAME.key on the operator's machine")
	default:
		return nil, fmt.Errorf("PEM block %q: want %q holding an ed25519 key (generate one with edgelink keygen)", block.Type, publicBlock)
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse public key: %w", err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("this is an %s key: edgelink keys are ed25519 (generate one with edgelink keygen)", keyType(k))
	}
	return pub, nil
}

// keyType names the algorithm of a key parsed by crypto/x509.
func keyType(k any) string {
	switch k.(type) {
	case *rsa.PrivateKey, *rsa.PublicKey:
		return "RSA"
	case *ecdsa.PrivateKey, *ecdsa.PublicKey:
		return "ECDSA"
	case *ecdh.PrivateKey, *ecdh.PublicKey:
		return "X25519"
	default:
		return fmt.Sprintf("unsupported (%T)", k)
	}
}
