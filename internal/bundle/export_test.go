package bundle

import (
	"encoding/json"
	"os"
	"path/filepath"

	"github.com/edgelink/edgelink/internal/signing"
)

// Resign edits the manifest of the bundle in dir and signs it again with s:
// a bundle its signer got wrong.
func Resign(dir string, s *signing.Signer, edit func(*Manifest)) error {
	raw, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return err
	}
	var m Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return err
	}
	edit(&m)
	if raw, err = m.marshal(); err != nil {
		return err
	}
	sig, err := json.Marshal(signatureFile{Key: s.KeyID(), Signature: s.Sign(signing.DomainBundle, raw)})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, SignatureFile), sig, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, ManifestFile), raw, 0o644)
}
