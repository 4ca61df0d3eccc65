package signing

import (
	"crypto/ed25519"
	"fmt"
	"maps"
	"slices"
)

// Keyring is a set of trusted public keys, looked up by key id. The zero
// value and nil are empty keyrings, which trust nothing.
type Keyring struct {
	keys map[string]trustedKey // by key id
}

type trustedKey struct {
	name string
	pub  ed25519.PublicKey
}

// LoadKeyring reads the public key files at paths into a keyring. A key
// listed twice is trusted once, under the name of its first file.
func LoadKeyring(paths []string) (*Keyring, error) {
	r := &Keyring{keys: make(map[string]trustedKey, len(paths))}
	for _, p := range paths {
		pub, err := LoadPublic(p)
		if err != nil {
			return nil, err
		}
		id := Fingerprint(pub)
		if _, ok := r.keys[id]; !ok {
			r.keys[id] = trustedKey{name: KeyName(p), pub: pub}
		}
	}
	return r, nil
}

// Verify checks that sig is the signature of payload in domain by the
// trusted key keyID. The error wraps [ErrUntrustedKey] when the keyring
// does not hold keyID and [ErrBadSignature] when the signature does not
// match.
func (r *Keyring) Verify(keyID, domain string, payload, sig []byte) error {
	k, ok := r.lookup(keyID)
	if !ok {
		return fmt.Errorf("key %s: %w", keyID, ErrUntrustedKey)
	}
	if !Verify(k.pub, domain, payload, sig) {
		return fmt.Errorf("key %s (%s): %w", keyID, k.name, ErrBadSignature)
	}
	return nil
}

// Name returns the name of the trusted key keyID (its file name without
// extension) and whether the keyring holds it.
func (r *Keyring) Name(keyID string) (string, bool) {
	k, ok := r.lookup(keyID)
	return k.name, ok
}

// KeyIDs returns the ids of the trusted keys, sorted.
func (r *Keyring) KeyIDs() []string {
	if r == nil {
		return nil
	}
	return slices.Sorted(maps.Keys(r.keys))
}

// Len returns the number of trusted keys.
func (r *Keyring) Len() int {
	if r == nil {
		return 0
	}
	return len(r.keys)
}

func (r *Keyring) lookup(keyID string) (trustedKey, bool) {
	if r == nil {
		return trustedKey{}, false
	}
	k, ok := r.keys[keyID]
	return k, ok
}
