package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/edgelink/edgelink/internal/diode"
	"github.com/edgelink/edgelink/internal/signing"
)

func newKeygenCmd(g *globals) *cobra.Command {
	var (
		out    string
		shared bool
	)
	cmd := &cobra.Command{
		Use:   "keygen --out NAME [--diode]",
		Short: "Generate an ed25519 key pair for signing fleet configuration revisions",
		Long: "Generate an ed25519 key pair: NAME.key, the private key (mode 0600), and\n" +
			"NAME.pub, the public key. The private key signs fleet configuration revisions\n" +
			"(and air-gap bundles); an agent accepts what it signs when NAME.pub is listed\n" +
			"in its fleet.trusted_keys. Keep NAME.key on the operator's machine, never on a\n" +
			"site. The key's name is NAME without its directory; its id, printed, is the\n" +
			"fingerprint of the public key.\n\n" +
			"With --diode, write instead NAME.key holding a random 256-bit key shared by a\n" +
			"diode's sender and receiver (links[].diode.key_file at both ends).\n\n" +
			"Existing files are never overwritten: exit status 1 when NAME.key or NAME.pub\n" +
			"exists.",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("%s takes no arguments, got %q (did you mean --out %s?)", cmd.CommandPath(), args, args[0])}
			}
			return nil
		},
		RunE: func(*cobra.Command, []string) error {
			if out == "" {
				return usageError{errors.New("no key name: pass --out NAME (writes NAME.key and NAME.pub)")}
			}
			if ext := filepath.Ext(out); ext == ".key" || ext == ".pub" {
				name := out[:len(out)-len(ext)]
				return usageError{fmt.Errorf("--out %s: give the name without extension: --out %s writes %s.key and %s.pub", out, name, name, name)}
			}
			if shared {
				key, err := diode.GenerateKey()
				if err != nil {
					return err
				}
				if err := diode.WriteKeyFile(out+".key", key); err != nil {
					if errors.Is(err, fs.ErrExist) {
						return fmt.Errorf("%w (keys are never replaced: choose another --out, or move the old key away)", err)
					}
					return err
				}
				fmt.Fprintf(g.stdout, "diode key: %s\n", out+".key")
				fmt.Fprintf(g.stdout, "Give the same file to the sender and the receiver (links[].diode.key_file); anyone holding it can send to the receiver.\n")
				return nil
			}
			if err := signing.WriteKeyPair(out); err != nil {
				if errors.Is(err, fs.ErrExist) {
					return fmt.Errorf("%w (keys are never replaced: choose another --out, or move the old pair away)", err)
				}
				return err
			}
			pub, err := signing.LoadPublic(out + ".pub")
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "private key: %s\n", out+".key")
			fmt.Fprintf(g.stdout, "public key:  %s\n", out+".pub")
			fmt.Fprintf(g.stdout, "key id:      %s\n", signing.Fingerprint(pub))
			fmt.Fprintf(g.stdout, "Copy %s to the agents and list it in their fleet.trusted_keys; keep %s off the sites.\n", out+".pub", out+".key")
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "out", "o", "", "write the key pair to NAME.key and NAME.pub, required")
	cmd.Flags().BoolVar(&shared, "diode", false, "write a data diode's shared key to NAME.key instead of a key pair")
	return cmd
}
