package cli

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgelink/edgelink/internal/link"
)

func newFailoverCmd(g *globals) *cobra.Command {
	var (
		file, linkName string
		dryRun, asJSON bool
		timeout        time.Duration
		sourceTimeout  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "failover -c FILE --link L [--dry-run] [--json]",
		Short: "Stop a link for the loss of its source and report what was left behind",
		Long: "Fail a link over to its destination, for a planned or unplanned loss of its source:\n" +
			"fence the link's transactional ids (an instance still running it stops; its open\n" +
			"transactions are aborted), sync its consumer groups a last time when the source\n" +
			"still answers, and print per partition the last source offset replicated and what\n" +
			"was left behind at the source (count and time range). --dry-run fences and syncs\n" +
			"nothing. Stop the site's agents too, or they start the link again.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, lc, logger, err := loadLink(g, file, linkName)
			if err != nil {
				return err
			}
			ctx, cancel := timeoutContext(cmd, timeout)
			defer cancel()
			rep, err := link.Failover(ctx, cfg, lc, link.FailoverOptions{DryRun: dryRun, SourceTimeout: sourceTimeout, Logger: logger})
			if err != nil {
				return fmt.Errorf("fail over link %s: %w", lc.Name, err)
			}
			if asJSON {
				return printJSON(g.stdout, rep)
			}
			printFailover(g.stdout, rep)
			return nil
		},
	}
	addConfigFlag(cmd, &file)
	cmd.Flags().StringVar(&linkName, "link", "", "link name (required)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "report only: fence nothing, sync nothing")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "give up after this long")
	cmd.Flags().DurationVar(&sourceTimeout, "source-timeout", 0, "how long to try the source before reporting it lost (default: the link's connection timeouts)")
	return cmd
}

// printFailover prints a failover report as a table.
func printFailover(w io.Writer, rep *link.FailoverReport) {
	what := "failed over"
	if rep.DryRun {
		what = "checked (dry run: nothing fenced)"
	}
	fmt.Fprintf(w, "link %s %s at %s\n", rep.Link, what, rep.At.Format(time.RFC3339))
	switch {
	case rep.Fenced:
		fmt.Fprintln(w, "fenced: any instance still running the link stops; its open transactions were aborted")
	case !rep.DryRun:
		fmt.Fprintln(w, "not fenced: an at-least-once link has no transactional ids; stop its agents")
	}
	if rep.SourceReachable {
		fmt.Fprintf(w, "source answered: %d records left behind\n", rep.LeftBehind)
	} else {
		fmt.Fprintf(w, "source did not answer (%s): what was left behind there is unknown\n", rep.SourceError)
	}
	if gs := rep.Groups; gs != nil {
		fmt.Fprintf(w, "consumer groups: %d of %d synced, %d active at the destination, %d waiting", gs.Synced, gs.Groups, gs.Active, gs.Pending)
		if gs.LastError != "" {
			fmt.Fprintf(w, " (%s)", gs.LastError)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tREPLICATED UP TO\tSOURCE END\tLEFT BEHIND\tFROM\tTO\tMIRROR\tMIRROR END")
	for _, p := range rep.Partitions {
		end, left, from, to := "?", "?", "", ""
		if p.SourceEnd >= 0 {
			end, left = fmt.Sprint(p.SourceEnd), fmt.Sprint(p.LeftBehind)
		}
		if p.FirstLeft != nil {
			from, to = p.FirstLeft.Format(time.RFC3339Nano), p.LastLeft.Format(time.RFC3339Nano)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%d\n", p.Topic, p.Partition, p.Replicated, end, left, from, to, p.Mirror, p.MirrorEnd)
	}
	_ = tw.Flush()
}
