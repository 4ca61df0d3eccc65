package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/edgelink/edgelink/internal/config"
)

func newCheckCmd(g *globals) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "check -c FILE",
		Short: "Validate a configuration file and exit",
		Long: "Validate a configuration file: syntax, unknown keys, regexes, cluster names,\n" +
			"environment variables. Exit status 0 when valid, 2 when invalid, 1 otherwise.",
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error {
			if err := requireConfig(file); err != nil {
				return err
			}
			cfg, err := config.Load(file)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "%s: valid (%s, %s)\n", file, plural(len(cfg.Clusters), "cluster"), plural(len(cfg.Links), "link"))
			for _, l := range cfg.Links {
				fmt.Fprintf(g.stdout, "  link %s: %s -> %s, %s, topics %q", l.Name, l.From, l.To, l.Delivery, l.Topics.Include)
				if len(l.Topics.Exclude) > 0 {
					fmt.Fprintf(g.stdout, " except %q", l.Topics.Exclude)
				}
				fmt.Fprintln(g.stdout)
			}
			return nil
		},
	}
	addConfigFlag(cmd, &file)
	return cmd
}

func addConfigFlag(cmd *cobra.Command, file *string) {
	cmd.Flags().StringVarP(file, "config", "c", "", "configuration file (YAML), required")
}

func requireConfig(file string) error {
	if file == "" {
		return usageError{fmt.Errorf("no configuration file: pass -c FILE (see examples/edgelink.yaml)")}
	}
	return nil
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}
