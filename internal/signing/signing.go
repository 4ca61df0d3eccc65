// Package signing holds edgelink's ed25519 keys: it generates key pairs,
// reads and writes them as PEM files, and signs and verifies fleet
// configuration revisions and (later) air-gap bundles.
//
// A key pair is two files written by edgelink keygen: NAME.key, the private
// key (PKCS#8 in a "PRIVATE KEY" PEM block, mode 0600), and NAME.pub, the
// public key (PKIX in a "PUBLIC KEY" PEM block); openssl reads both. A key
// is known by its id, [Fingerprint], and by its name, the file name without
// its extension ("ops-anna" for ops-anna.key).
//
// Every signature is bound to a domain, the kind of thing signed
// ([DomainConfigRevision], [DomainBundle]): the signed message is the
// domain, a NUL byte and the payload, so a signature made for one kind of
// thing never verifies as another.
package signing

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
)

// Signature domains: what a signature is for.
const (
	// DomainConfigRevision signs a fleet configuration revision.
	DomainConfigRevision = "edgelink/config-revision/v1"
	// DomainBundle signs an air-gap bundle.
	DomainBundle = "edgelink/bundle/v1"
)

// Errors of [Keyring.Verify], wrapped with the key id; test with errors.Is.
var (
	// ErrUntrustedKey means the signature names a key that is not in the
	// keyring.
	ErrUntrustedKey = errors.New("not a trusted key")
	// ErrBadSignature means the key is trusted but the signature is not its
	// signature of this payload in this domain: the payload was altered,
	// the signature was made for another domain, or it is not a signature.
	ErrBadSignature = errors.New("signature does not match")
)

// Fingerprint returns a public key's id: "ed25519:" and the first 16 hex
// digits of the SHA-256 of the raw 32-byte key.
func Fingerprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return "ed25519:" + hex.EncodeToString(sum[:8])
}

// Sign signs payload in domain with priv. It panics if priv is not an
// ed25519 private key or domain contains a NUL byte (a programming error:
// domains are the constants of this package).
func Sign(priv ed25519.PrivateKey, domain string, payload []byte) []byte {
	if strings.IndexByte(domain, 0) >= 0 {
		panic("signing: domain contains a NUL byte")
	}
	return ed25519.Sign(priv, message(domain, payload))
}

// Verify reports whether sig is pub's signature of payload in domain.
func Verify(pub ed25519.PublicKey, domain string, payload, sig []byte) bool {
	if len(pub) != ed25519.PublicKeySize || strings.IndexByte(domain, 0) >= 0 {
		return false
	}
	return ed25519.Verify(pub, message(domain, payload), sig)
}

// message is what is signed: domain, NUL, payload.
func message(domain string, payload []byte) []byte {
	m := make([]byte, 0, len(domain)+1+len(payload))
	m = append(m, domain...)
	m = append(m, 0)
	return append(m, payload...)
}

// Signer is a private key with its name.
type Signer struct {
	name string
	key  ed25519.PrivateKey
}

// NewSigner returns a signer for priv named name.
func NewSigner(name string, priv ed25519.PrivateKey) *Signer {
	return &Signer{name: name, key: priv}
}

// Name returns the key's name: its file name without extension.
func (s *Signer) Name() string { return s.name }

// Public returns the public half of the key.
func (s *Signer) Public() ed25519.PublicKey { return s.key.Public().(ed25519.PublicKey) }

// KeyID returns the key's id, the [Fingerprint] of its public half.
func (s *Signer) KeyID() string { return Fingerprint(s.Public()) }

// Sign signs payload in domain; see [Sign].
func (s *Signer) Sign(domain string, payload []byte) []byte { return Sign(s.key, domain, payload) }
