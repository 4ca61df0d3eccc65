package bundle

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ReceiptFormat is the receipt format this package writes and reads.
const ReceiptFormat = 1

// maxReceipt bounds the size of a receipt file.
const maxReceipt = 64 << 20

// Receipt is what the importer writes once a bundle is in Kafka, and the
// person carries back to the site. A receipt is plain JSON, not signed: the
// site trusts whoever carries it as much as whoever edits its
// configuration.
type Receipt struct {
	// Format is the receipt format, [ReceiptFormat].
	Format int `json:"format"`
	// BundleID and BundleHash identify the bundle imported (its
	// [Manifest.Hash]), Sequence its place in the link's chain.
	BundleID   string `json:"bundle_id"`
	BundleHash string `json:"bundle_hash"`
	Sequence   int64  `json:"sequence"`
	// Site and Link name the link that exported the bundle.
	Site string `json:"site,omitempty"`
	Link string `json:"link"`
	// Imported is when the import finished.
	Imported time.Time `json:"imported"`
	// Ranges say what the destination holds, per source partition: every
	// record up to To (excluded). Their counts are those this import wrote.
	Ranges []Range `json:"ranges"`
	// Records is the number of records this import wrote.
	Records int64 `json:"records"`
	// AlreadyImported tells that the destination held the bundle already,
	// so this import wrote nothing.
	AlreadyImported bool `json:"already_imported,omitempty"`
	// DestinationCluster is the id of the Kafka cluster imported into.
	DestinationCluster string `json:"destination_cluster,omitempty"`
}

// Marshal returns the receipt as written to a file. A zero Format is
// written as [ReceiptFormat].
func (r Receipt) Marshal() ([]byte, error) {
	if r.Format == 0 {
		r.Format = ReceiptFormat
	}
	if err := r.check(); err != nil {
		return nil, fmt.Errorf("encode receipt: %w", err)
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode receipt: %w", err)
	}
	return append(data, '\n'), nil
}

// ParseReceipt parses a receipt. Its errors wrap [ErrFormat].
func ParseReceipt(data []byte) (*Receipt, error) {
	var r Receipt
	d := json.NewDecoder(bytes.NewReader(data))
	if err := d.Decode(&r); err != nil {
		return nil, fmt.Errorf("parse receipt: %w: %w", err, ErrFormat)
	}
	if d.More() {
		return nil, fmt.Errorf("parse receipt: data after the receipt: %w", ErrFormat)
	}
	if r.Format != ReceiptFormat {
		return nil, fmt.Errorf("parse receipt: format %d: this edgelink reads format %d: %w", r.Format, ReceiptFormat, ErrFormat)
	}
	if err := r.check(); err != nil {
		return nil, fmt.Errorf("parse receipt: %w: %w", err, ErrFormat)
	}
	return &r, nil
}

func (r *Receipt) check() error {
	switch {
	case !isHex(r.BundleHash, sha256.Size):
		return fmt.Errorf("bundle hash %q: want 64 hex digits", r.BundleHash)
	case r.BundleID == "":
		return errors.New("no bundle id")
	case r.Sequence < 1:
		return fmt.Errorf("sequence %d", r.Sequence)
	case r.Link == "":
		return errors.New("no link name")
	}
	return nil
}

// WriteReceipt writes r to path, atomically: the file is the old one or the
// new one, whole, even across a crash.
func WriteReceipt(path string, r Receipt) error {
	data, err := r.Marshal()
	if err != nil {
		return err
	}
	if err := writeFileAtomic(path, data); err != nil {
		return fmt.Errorf("write receipt: %w", err)
	}
	return nil
}

// ReadReceipt reads the receipt at path; see [ParseReceipt].
func ReadReceipt(path string) (*Receipt, error) {
	data, err := readFileMax(path, maxReceipt)
	if err != nil {
		return nil, fmt.Errorf("read receipt: %w", err)
	}
	r, err := ParseReceipt(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}
