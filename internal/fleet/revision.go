package fleet

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/edgelink/edgelink/internal/signing"
)

// RevisionFormat is the format version of a Revision.
const RevisionFormat = 1

// Revision is a configuration revision: a whole agent configuration for
// the sites of its Target, numbered so that a newer one replaces an older
// one. It travels signed, inside an Envelope.
type Revision struct {
	Format int `json:"format"`
	// Number orders revisions: fleet apply publishes the newest number
	// seen plus one, so a site refuses a revision older than the one it
	// runs.
	Number int64  `json:"revision"`
	Target Target `json:"target"`
	// IssuedAt and IssuedBy: when and by whom (key name, key id, the
	// operator's user and host) it was published; Note is the operator's
	// message.
	IssuedAt time.Time `json:"issued_at"`
	IssuedBy Issuer    `json:"issued_by"`
	Note     string    `json:"note,omitempty"`
	// Document is the agent configuration (YAML) as written: ${VAR} and
	// *_file references resolve at the site, so secrets stay there.
	Document string `json:"document"`
}

// Issuer says who published a revision.
type Issuer struct {
	Key   string `json:"key"`
	KeyID string `json:"key_id"`
	User  string `json:"user,omitempty"`
	Host  string `json:"host,omitempty"`
}

// String is "key (key id), user@host".
func (i Issuer) String() string {
	s := i.Key + " (" + i.KeyID + ")"
	if i.User != "" {
		s += ", " + i.User
		if i.Host != "" {
			s += "@" + i.Host
		}
	}
	return s
}

// Target selects the sites a revision is for: one site, or every site
// whose site_labels include all of Selector.
type Target struct {
	Site     string            `json:"site,omitempty"`
	Selector map[string]string `json:"selector,omitempty"`
}

// Key is the target's key in the config topic: "site/<site>" or
// "selector/<k>=<v>,…" (labels sorted).
func (t Target) Key() string {
	if t.Site != "" {
		return "site/" + t.Site
	}
	parts := make([]string, 0, len(t.Selector))
	for _, k := range slices.Sorted(maps.Keys(t.Selector)) {
		parts = append(parts, k+"="+t.Selector[k])
	}
	return "selector/" + strings.Join(parts, ",")
}

// String describes the target for people.
func (t Target) String() string {
	if t.Site != "" {
		return "site " + t.Site
	}
	return "sites with " + strings.TrimPrefix(t.Key(), "selector/")
}

// Matches reports whether the target selects the site with labels.
func (t Target) Matches(site string, labels map[string]string) bool {
	if t.Site != "" {
		return t.Site == site
	}
	if len(t.Selector) == 0 {
		return false
	}
	for k, v := range t.Selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// ParseSelector parses "k=v[,k=v…]".
func ParseSelector(s string) (map[string]string, error) {
	out := map[string]string{}
	for part := range strings.SplitSeq(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("selector %q: want label=value[,label=value…]", s)
		}
		if prev, dup := out[k]; dup && prev != v {
			return nil, fmt.Errorf("selector %q: label %s given twice", s, k)
		}
		out[k] = v
	}
	return out, nil
}

// Envelope is a signed Revision: the value of a config topic record and of
// a history "published" event. Payload holds the revision's JSON exactly
// as signed, so that verifying needs no canonical form.
type Envelope struct {
	Payload   []byte `json:"payload"`
	KeyID     string `json:"key_id"`
	Signature []byte `json:"signature"`
}

// Seal signs rev with the signer's key and returns its envelope. The
// signature's domain is signing.DomainConfigRevision, so that it cannot
// pass for a bundle's.
func Seal(rev Revision, s *signing.Signer) (Envelope, error) {
	payload, err := json.Marshal(rev)
	if err != nil {
		return Envelope{}, fmt.Errorf("encode revision: %w", err)
	}
	return Envelope{Payload: payload, KeyID: s.KeyID(), Signature: s.Sign(signing.DomainConfigRevision, payload)}, nil
}

// Peek decodes the revision in an envelope without verifying it: for
// ordering and display only, never to apply.
func (e Envelope) Peek() (Revision, error) {
	var rev Revision
	if err := json.Unmarshal(e.Payload, &rev); err != nil {
		return Revision{}, fmt.Errorf("decode revision: %w", err)
	}
	if rev.Format > RevisionFormat {
		return Revision{}, fmt.Errorf("revision format %d is newer than this agent understands (%d): upgrade the agent", rev.Format, RevisionFormat)
	}
	return rev, nil
}

// Open verifies the envelope's signature against the trusted keys and
// returns its revision. The errors wrap signing.ErrUntrustedKey and
// signing.ErrBadSignature.
func (e Envelope) Open(trusted *signing.Keyring) (Revision, error) {
	if err := trusted.Verify(e.KeyID, signing.DomainConfigRevision, e.Payload, e.Signature); err != nil {
		return Revision{}, err
	}
	return e.Peek()
}

// Hash is a short hash of the signed payload, to tell two revisions of the
// same number apart.
func (e Envelope) Hash() string {
	h := sha256.Sum256(e.Payload)
	return hex.EncodeToString(h[:8])
}

// Marshal encodes the envelope as a record value.
func (e Envelope) Marshal() ([]byte, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode envelope: %w", err)
	}
	return b, nil
}

// UnmarshalEnvelope decodes a record value.
func UnmarshalEnvelope(b []byte) (Envelope, error) {
	var e Envelope
	if err := json.Unmarshal(b, &e); err != nil {
		return Envelope{}, fmt.Errorf("decode envelope: %w", err)
	}
	if len(e.Payload) == 0 {
		return Envelope{}, errors.New("decode envelope: no payload")
	}
	return e, nil
}

// newer reports whether revision a (with envelope hash ha) orders after b:
// by number, then time of issue, then hash, so that two revisions
// published with the same number at once are ordered the same way at
// every site.
func newer(a Revision, ha string, b Revision, hb string) bool {
	if a.Number != b.Number {
		return a.Number > b.Number
	}
	if !a.IssuedAt.Equal(b.IssuedAt) {
		return a.IssuedAt.After(b.IssuedAt)
	}
	return ha > hb
}
