package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/spf13/cobra"

	"github.com/edgelink/edgelink/internal/bundle"
	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/link"
	"github.com/edgelink/edgelink/internal/signing"
)

func newBundleCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bundle",
		Short: "Carry a link across an air gap on a disk: export, import, ack",
		Long: "A link with a bundle block crosses an air gap by hand. At the site,\n" +
			"`bundle export` writes the records the cloud has not acknowledged into a\n" +
			"signed (and optionally encrypted) bundle directory; a person carries it to\n" +
			"the cloud, where `bundle import` verifies everything and writes it to the\n" +
			"link's destination exactly once, and writes a receipt; carried back,\n" +
			"`bundle ack` moves the site's export position past what the cloud holds.",
		Args: noArgs,
	}
	cmd.AddCommand(newBundleExportCmd(g), newBundleImportCmd(g), newBundleAckCmd(g))
	return cmd
}

// The memory the bundle commands aim to stay within (unless GOMEMLIMIT
// says otherwise): what they hold at once is bounded (an export's fetches
// and compressor, an import's producer buffer of one slot), so collecting
// sooner costs little and keeps a site's small machine free.
const (
	exportMemory = 40 << 20
	importMemory = 32 << 20
)

// limitMemory sets a bundle command's memory limit.
func limitMemory(limit int64) {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(limit)
	}
}

// bundleLink loads the configuration and the link with a bundle block.
func bundleLink(g *globals, file, name string) (*config.Config, *config.Link, error) {
	cfg, _, err := loadConfig(g, file)
	if err != nil {
		return nil, nil, err
	}
	lc, err := findLink(cfg, name)
	if err != nil {
		return nil, nil, err
	}
	if lc.Bundle == nil {
		return nil, nil, usageError{fmt.Errorf("link %s has no bundle block: add links[].bundle (signing_key at the site, trusted_keys in the cloud)", name)}
	}
	return cfg, lc, nil
}

func newBundleExportCmd(g *globals) *cobra.Command {
	var (
		file, linkName, out string
		maxBytes            string
		quiet               bool
	)
	cmd := &cobra.Command{
		Use:   "export -c FILE --link NAME --out DIR [--max-bytes N]",
		Short: "Write a link's unacknowledged records into a signed bundle",
		Long: "Write the records of the link since the last acknowledged export (or from the\n" +
			"link's start) up to the source's last stable offsets into the bundle directory\n" +
			"DIR: a manifest signed with links[].bundle.signing_key and chunk files of at\n" +
			"most chunk_size, encrypted to encrypt_to when set. The link's filters and\n" +
			"projections run here. Until a receipt is acknowledged (bundle ack), every\n" +
			"export carries the same records again, under the same sequence number.\n\n" +
			"Exit status 0 when the bundle is written, 1 when it is not, 2 for a bad\n" +
			"configuration or bad usage.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, lc, err := bundleLink(g, file, linkName)
			if err != nil {
				return err
			}
			if out == "" {
				return usageError{errors.New("no bundle directory: pass --out DIR")}
			}
			var limit int64
			if maxBytes != "" {
				if limit, err = config.ParseSize(maxBytes); err != nil || limit <= 0 {
					return usageError{fmt.Errorf("--max-bytes %s: want a size such as 500MiB", maxBytes)}
				}
			}
			if lc.Bundle.SigningKey == "" {
				return usageError{fmt.Errorf("link %s: bundle export needs links[].bundle.signing_key (NAME.key from edgelink keygen)", lc.Name)}
			}
			signer, err := signing.LoadPrivate(lc.Bundle.SigningKey)
			if err != nil {
				return err
			}
			recipients, err := ageRecipients(lc.Bundle.EncryptTo)
			if err != nil {
				return err
			}
			logger, err := g.logger()
			if err != nil {
				return err
			}
			bar := newProgressBar(g.stderr, "exporting", quiet)
			began := time.Now()
			limitMemory(exportMemory)
			res, err := link.Export(cmd.Context(), cfg, lc, link.ExportOptions{
				Out: out, MaxBytes: limit, Signer: signer, Recipients: recipients, ChunkSize: lc.Bundle.ChunkSize,
				Progress: func(done, total, bytes int64) { bar.update(done, total, bytes) }, Logger: logger,
			})
			bar.finish()
			if err != nil {
				return err
			}
			m := res.Manifest
			took := time.Since(began)
			fmt.Fprintf(g.stdout, "bundle %d of %s written to %s\n", m.Sequence, link.Identity{Site: cfg.Site, Link: lc.Name}, out)
			fmt.Fprintf(g.stdout, "  id %s, hash %s\n", m.ID, m.Hash())
			fmt.Fprintf(g.stdout, "  %d records, %s payload in %d chunk(s)%s, signed by %s, in %s (%s/s)\n",
				m.Records, humanBytes(m.Bytes), len(m.Chunks), encryptedNote(m), m.SignedBy, took.Round(time.Millisecond), humanBytes(int64(float64(m.Bytes)/max(took.Seconds(), 1e-3))))
			if res.Filtered > 0 {
				fmt.Fprintf(g.stdout, "  %d records left out by the link's transforms\n", res.Filtered)
			}
			if !res.Complete {
				fmt.Fprintf(g.stdout, "  cut at --max-bytes: more records wait; export again after this one is acknowledged\n")
			}
			for _, l := range res.Lost {
				fmt.Fprintf(g.stderr, "warning: %s were deleted at the source (retention) before any bundle carried them\n", l)
			}
			fmt.Fprintf(g.stdout, "Carry %s to the cloud, import it with edgelink bundle import, and bring the receipt back for edgelink bundle ack.\n", out)
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "", "configuration file, required")
	cmd.Flags().StringVar(&linkName, "link", "", "the link to export, required")
	cmd.Flags().StringVar(&out, "out", "", "bundle directory to write (must not exist or be empty), required")
	cmd.Flags().StringVar(&maxBytes, "max-bytes", "", "stop once the records' payload reaches this size (e.g. 4GiB); the next export goes on")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress bar")
	return cmd
}

func newBundleImportCmd(g *globals) *cobra.Command {
	var (
		file, linkName, receipt string
		quiet                   bool
	)
	cmd := &cobra.Command{
		Use:   "import -c FILE --link NAME BUNDLE...",
		Short: "Verify bundles and write them to the link's destination, exactly once",
		Long: "Verify the bundles (signature by one of links[].bundle.trusted_keys, every\n" +
			"chunk's hash, decryption with decrypt_with, every record) before anything is\n" +
			"written; then write their records to the link's destination cluster in\n" +
			"transactions with the link's checkpoints, as the link itself would. The\n" +
			"source cluster is not needed. Bundles must follow what the destination holds:\n" +
			"one out of sequence is refused, naming the missing one. Records the\n" +
			"destination holds already are not written again, so importing twice, or again\n" +
			"after an interrupted import, is safe. Writes a receipt (--receipt, by default\n" +
			"receipt-<sequence>.json in the current directory) to carry back to the site.\n\n" +
			"Exit status 0 when every record is at the destination, 1 when not, 2 for a bad\n" +
			"configuration or bad usage.",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError{fmt.Errorf("%s needs the bundle directories to import", cmd.CommandPath())}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, dirs []string) error {
			cfg, lc, err := bundleLink(g, file, linkName)
			if err != nil {
				return err
			}
			if len(lc.Bundle.TrustedKeys) == 0 {
				return usageError{fmt.Errorf("link %s: bundle import needs links[].bundle.trusted_keys (the sites' NAME.pub)", lc.Name)}
			}
			trusted, err := signing.LoadKeyring(lc.Bundle.TrustedKeys)
			if err != nil {
				return err
			}
			ids, err := ageIdentities(lc.Bundle.DecryptWith)
			if err != nil {
				return err
			}
			logger, err := g.logger()
			if err != nil {
				return err
			}
			ctx, cancel := signalContext(cmd.Context())
			defer cancel()
			verifyBar := newProgressBar(g.stderr, "verifying", quiet)
			writeBar := newProgressBar(g.stderr, "importing", quiet)
			began := time.Now()
			limitMemory(importMemory)
			var verified time.Time
			res, err := link.Import(ctx, cfg, lc, dirs, link.ImportOptions{
				Trusted: trusted, Identities: ids, Logger: logger,
				Verifying: func(done, total int64) { verifyBar.update(done, total, done) },
				Writing: func(st link.Status) {
					if verified.IsZero() {
						verifyBar.finish()
						verified = time.Now()
					}
					writeBar.update(st.Records, st.Records+st.BacklogRecords, st.Bytes)
				},
			})
			verifyBar.finish()
			writeBar.finish()
			if err != nil {
				return err
			}
			r := res.Receipt
			if receipt == "" {
				receipt = fmt.Sprintf("receipt-%d.json", r.Sequence)
			}
			if err := bundle.WriteReceipt(receipt, r); err != nil {
				return err
			}
			took := time.Since(began)
			if res.Written == 0 {
				fmt.Fprintf(g.stdout, "bundle %d of %s was imported before: nothing written\n", r.Sequence, link.Identity{Site: cfg.Site, Link: lc.Name})
			} else {
				fmt.Fprintf(g.stdout, "imported bundle(s) up to %d of %s into cluster %s: %d records written", r.Sequence, link.Identity{Site: cfg.Site, Link: lc.Name}, lc.To, res.Written)
				if res.Skipped > 0 {
					fmt.Fprintf(g.stdout, ", %d held already", res.Skipped)
				}
				fmt.Fprintf(g.stdout, ", in %s\n", took.Round(time.Millisecond))
			}
			fmt.Fprintf(g.stdout, "receipt: %s (carry it back to the site: edgelink bundle ack -c FILE --link %s %s)\n", receipt, lc.Name, filepath.Base(receipt))
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "", "configuration file, required")
	cmd.Flags().StringVar(&linkName, "link", "", "the link to import, required")
	cmd.Flags().StringVar(&receipt, "receipt", "", "where to write the receipt (default receipt-<sequence>.json)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress bar")
	return cmd
}

func newBundleAckCmd(g *globals) *cobra.Command {
	var file, linkName string
	cmd := &cobra.Command{
		Use:   "ack -c FILE --link NAME RECEIPT",
		Short: "Record at the site that the cloud imported a bundle",
		Long: "Read a receipt written by bundle import and move the link's export position\n" +
			"to what the cloud holds: the next export starts there, with the next sequence\n" +
			"number. Acknowledging a receipt twice changes nothing.",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{fmt.Errorf("%s takes one receipt file", cmd.CommandPath())}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, lc, err := bundleLink(g, file, linkName)
			if err != nil {
				return err
			}
			r, err := bundle.ReadReceipt(args[0])
			if err != nil {
				return err
			}
			logger, err := g.logger()
			if err != nil {
				return err
			}
			ctx, cancel := timeoutContext(cmd, time.Minute)
			defer cancel()
			res, err := link.Ack(ctx, cfg, lc, r, logger)
			if err != nil {
				return err
			}
			if res.Already {
				fmt.Fprintf(g.stdout, "bundle %d was acknowledged before (the last acknowledged is %d): nothing changed\n", r.Sequence, res.State.Acked.Sequence)
				return nil
			}
			fmt.Fprintf(g.stdout, "acknowledged bundle %d (%d records imported %s); the next export is bundle %d\n",
				r.Sequence, r.Records, r.Imported.Format(time.RFC3339), r.Sequence+1)
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "", "configuration file, required")
	cmd.Flags().StringVar(&linkName, "link", "", "the link whose bundle was imported, required")
	return cmd
}

func encryptedNote(m *bundle.Manifest) string {
	if m.Encrypted {
		return fmt.Sprintf(", encrypted to %d recipient(s)", m.Recipients)
	}
	return ""
}

// ageRecipients reads encrypt_to: age recipients, or files holding them.
func ageRecipients(list []string) ([]age.Recipient, error) {
	var out []age.Recipient
	for _, s := range list {
		if strings.HasPrefix(s, "age1") {
			r, err := age.ParseX25519Recipient(s)
			if err != nil {
				return nil, fmt.Errorf("encrypt_to %s: %w", s, err)
			}
			out = append(out, r)
			continue
		}
		f, err := os.Open(s)
		if err != nil {
			return nil, fmt.Errorf("encrypt_to: %w", err)
		}
		rs, err := age.ParseRecipients(f)
		_ = f.Close()
		if err != nil {
			return nil, fmt.Errorf("encrypt_to %s: %w", s, err)
		}
		out = append(out, rs...)
	}
	return out, nil
}

// ageIdentities reads decrypt_with: files holding age identities.
func ageIdentities(files []string) ([]age.Identity, error) {
	var out []age.Identity
	for _, p := range files {
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("decrypt_with: %w", err)
		}
		ids, err := age.ParseIdentities(bufio.NewReader(f))
		_ = f.Close()
		if err != nil {
			return nil, fmt.Errorf("decrypt_with %s: %w", p, err)
		}
		out = append(out, ids...)
	}
	return out, nil
}

// progressBar draws a one-line progress bar with a rate and an ETA on a
// terminal's standard error, at most ten times a second.
type progressBar struct {
	w     io.Writer
	label string
	off   bool
	began time.Time
	last  time.Time
	drawn bool
}

func newProgressBar(w io.Writer, label string, quiet bool) *progressBar {
	return &progressBar{w: w, label: label, off: quiet || !terminal(w), began: time.Now()}
}

// terminal reports whether w is a terminal (a bar in a log file is noise).
func terminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func (p *progressBar) update(done, total, bytes int64) {
	if p.off || time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last = time.Now()
	frac := 0.0
	if total > 0 {
		frac = min(float64(done)/float64(total), 1)
	}
	const width = 30
	n := int(frac * width)
	elapsed := time.Since(p.began)
	eta := "?"
	if frac > 0 && frac < 1 {
		eta = (time.Duration(float64(elapsed)/frac) - elapsed).Round(time.Second).String()
	} else if frac >= 1 {
		eta = "0s"
	}
	rate := float64(bytes) / max(elapsed.Seconds(), 1e-3)
	fmt.Fprintf(p.w, "\r%-9s [%s%s] %5.1f%% %s/s ETA %s   ", p.label, strings.Repeat("=", n), strings.Repeat(" ", width-n), frac*100, humanBytes(int64(rate)), eta)
	p.drawn = true
}

func (p *progressBar) finish() {
	if p.drawn {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
	p.off = true
}

// humanBytes writes a byte count in a binary unit.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
