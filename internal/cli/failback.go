package cli

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgelink/edgelink/internal/link"
)

func newFailbackCmd(g *globals) *cobra.Command {
	var (
		file, linkName string
		asJSON         bool
		timeout        time.Duration
	)
	cmd := &cobra.Command{
		Use:   "failback -c FILE --link L [--json]",
		Short: "Hand a failed-over link's stream back to its source, which returned",
		Long: "Fail a link back to its source after edgelink failover, once the source answers again:\n" +
			"the records left behind at the source go to a quarantine topic there\n" +
			"(__edgelink.quarantine.<link>.<topic>; nothing is deleted); what was written at the\n" +
			"destination since the failover is copied back to the source after them, exactly once;\n" +
			"the link's checkpoints move past both; the consumer groups the link syncs return to\n" +
			"the source with exact offsets; then the agents running the link resume it. Stop the\n" +
			"producers and consumers at the destination first. Interrupted, run it again: it goes on\n" +
			"where it stopped.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, lc, logger, err := loadLink(g, file, linkName)
			if err != nil {
				return err
			}
			ctx, cancel := timeoutContext(cmd, timeout)
			defer cancel()
			last := ""
			progress := func(step string, st link.Status) {
				if step == last && st.Records == 0 {
					return
				}
				if step != last {
					fmt.Fprintln(g.stderr, step+"…")
					last = step
					return
				}
				fmt.Fprintf(g.stderr, "  %s: %d records\n", step, st.Records)
			}
			rep, err := link.Failback(ctx, cfg, lc, link.FailbackOptions{Progress: progress, Logger: logger})
			if err != nil {
				return fmt.Errorf("fail back link %s: %w", lc.Name, err)
			}
			if asJSON {
				return printJSON(g.stdout, rep)
			}
			printFailback(g.stdout, rep)
			return nil
		},
	}
	addConfigFlag(cmd, &file)
	cmd.Flags().StringVar(&linkName, "link", "", "link name (required)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().DurationVar(&timeout, "timeout", time.Hour, "give up after this long (run it again to go on)")
	return cmd
}

// printFailback prints a failback report as a table.
func printFailback(w io.Writer, rep *link.FailbackReport) {
	fmt.Fprintf(w, "link %s failed back at %s (it failed over at %s); its agents resume it\n",
		rep.Link, rep.At.Format(time.RFC3339), rep.FailedOverAt.Format(time.RFC3339))
	fmt.Fprintf(w, "%d records left behind at the source quarantined; %d records written at the destination copied back\n", rep.Quarantined, rep.CopiedBack)
	if gs := rep.Groups; gs != nil {
		fmt.Fprintf(w, "consumer groups: %d of %d returned (%d offsets), %d active at the source, %d partitions consumed past what was copied",
			gs.Returned, gs.Groups, gs.Committed, gs.Active, gs.Pending)
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tREPLICATED UP TO\tRESUMES AT\tQUARANTINED\tFROM\tTO\tMIRROR\tCOPIED BACK FROM\tTO")
	for _, p := range rep.Partitions {
		from, to := "", ""
		if p.FirstLeft != nil {
			from, to = p.FirstLeft.Format(time.RFC3339Nano), p.LastLeft.Format(time.RFC3339Nano)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%d\t%d\n", p.Topic, p.Partition, p.Replicated, p.ResumeAt, p.Quarantined, from, to, p.Mirror, p.MirrorEnd, p.CopiedTo)
	}
	_ = tw.Flush()
	var quarantines []string
	for _, p := range rep.Partitions {
		if p.Quarantine != "" && !slices.Contains(quarantines, p.Quarantine) {
			quarantines = append(quarantines, p.Quarantine)
		}
	}
	if len(quarantines) > 0 {
		fmt.Fprintf(w, "\nthe records left behind are at the source in %s (each in its partition; their provenance header names their offsets)\n", strings.Join(quarantines, ", "))
	}
}
