package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/edgelink/edgelink/internal/kafka"
	"github.com/edgelink/edgelink/internal/link"
	"github.com/edgelink/edgelink/internal/verify"
)

func newVerifyCmd(g *globals) *cobra.Command {
	var (
		file, linkName string
		opts           verify.Options
	)
	cmd := &cobra.Command{
		Use:   "verify -c FILE --link NAME",
		Short: "Compare a link's destination with its source, record by record",
		Long: "Compare every topic a link selects with its mirror topic, record by record:\n" +
			"every committed source record must be at the destination exactly once, in\n" +
			"order, with key, value, headers and timestamp intact. Prints what is lost,\n" +
			"duplicated, reordered, corrupted or phantom (copied from an aborted\n" +
			"transaction), with examples.\n\n" +
			"Records the link has not replicated yet count as lost: verify once the link\n" +
			"has caught up. Exit status 0 when the copy is exact, 1 when it is not (or the\n" +
			"clusters cannot be read), 2 for a bad configuration or bad usage.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, l, logger, err := loadLink(g, file, linkName)
			if err != nil {
				return err
			}
			if opts.Timeout <= 0 {
				return usageError{fmt.Errorf("--timeout %s: want a positive duration", opts.Timeout)}
			}
			if opts.Examples < 0 {
				return usageError{fmt.Errorf("--examples %d: want 0 or more", opts.Examples)}
			}
			if opts.Examples == 0 {
				opts.Examples = -1 // none
			}
			src, err := kafka.NewClient(cfg.Clusters[l.From], logger)
			if err != nil {
				return err
			}
			defer src.Close()
			dst, err := kafka.NewClient(cfg.Clusters[l.To], logger)
			if err != nil {
				return err
			}
			defer dst.Close()
			opts.Source, opts.Destination = src, dst
			// A link's transforms shape what its mirror holds.
			if opts.Derive, err = link.RecordDeriver(l); err != nil {
				return err
			}
			if opts.Derive == nil {
				if opts.Transform, err = link.RecordTransform(l); err != nil {
					return err
				}
			}

			ctx, cancel := timeoutContext(cmd, opts.Timeout)
			defer cancel()
			info, err := kafka.Probe(ctx, src)
			if err != nil {
				return fmt.Errorf("list topics of cluster %s: %w", l.From, err)
			}
			for _, t := range info.TopicNames() {
				if !strings.HasPrefix(t, "__") && l.Topics.Match(t) {
					opts.Topics = append(opts.Topics, verify.Pair{Source: t, Destination: l.DestinationTopic(cfg.Site, t)})
				}
			}
			fmt.Fprintf(g.stdout, "link %s: %s -> %s, %s\n", l.Name, l.From, l.To, plural(len(opts.Topics), "topic"))
			for _, p := range opts.Topics {
				fmt.Fprintf(g.stdout, "  %s -> %s\n", p.Source, p.Destination)
			}
			rep, err := verify.Check(ctx, opts)
			if err != nil {
				return fmt.Errorf("verify link %s: %w", l.Name, err)
			}
			fmt.Fprint(g.stdout, rep)
			if !rep.OK() {
				return fmt.Errorf("link %s: destination differs from source: %s", l.Name, rep.Discrepancies())
			}
			return nil
		},
	}
	addConfigFlag(cmd, &file)
	cmd.Flags().StringVar(&linkName, "link", "", "name of the link to verify, required")
	cmd.Flags().IntVar(&opts.Examples, "examples", verify.DefaultExamples, "examples to print per kind of discrepancy")
	cmd.Flags().DurationVar(&opts.Timeout, "timeout", verify.DefaultTimeout, "give up when the check takes longer")
	cmd.Flags().BoolVar(&opts.AllowForeign, "allow-foreign", false, "accept destination records that edgelink did not write")
	return cmd
}
