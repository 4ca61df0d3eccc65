package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/fleet"
	"github.com/edgelink/edgelink/internal/kafka"
	"github.com/edgelink/edgelink/internal/observe"
	"github.com/edgelink/edgelink/internal/signing"
)

func newFleetCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fleet",
		Short: "Watch and configure the fleet of sites from the cloud",
		Long: "The fleet lives in topics of the cloud cluster the sites already write to\n" +
			"(fleet.cluster): each agent with a fleet block reports there, and managed\n" +
			"agents take signed configuration revisions from there. These commands read\n" +
			"and write those topics; they need the clusters and the fleet block of a\n" +
			"configuration file (no site, no links).",
	}
	cmd.AddCommand(newFleetServeCmd(g), newFleetStatusCmd(g), newFleetApplyCmd(g))
	return cmd
}

// loadFleetConfig loads a configuration with a fleet block and returns the
// client options of its fleet cluster.
func loadFleetConfig(g *globals, file string) (*config.Config, []kgo.Opt, error) {
	cfg, logger, err := loadConfig(g, file)
	if err != nil {
		return nil, nil, err
	}
	if cfg.Fleet == nil {
		return nil, nil, usageError{fmt.Errorf("%s has no fleet block: add fleet: {cluster: NAME}, naming the cluster that holds the fleet's topics", cfg.File)}
	}
	opts, err := kafka.ClientOptions(cfg.Clusters[cfg.Fleet.Cluster], logger, kafka.Dial{})
	if err != nil {
		return nil, nil, err
	}
	return cfg, opts, nil
}

type fleetStatusFlags struct {
	file, site, label, state string
	asJSON                   bool
	timeout                  time.Duration
}

func newFleetStatusCmd(g *globals) *cobra.Command {
	var f fleetStatusFlags
	cmd := &cobra.Command{
		Use:   "status -c FILE",
		Short: "Print the fleet as a table: every site's state, lag, time until data loss, version and configuration",
		Long: "Read the fleet's topics to their end and print one row per site, worst first\n" +
			"(silent sites, then by state and time until data loss). --site takes a name\n" +
			"or a shell pattern (plant-*), --label a label=value, --state a state or \"stale\".",
		Example: "  edgelink fleet status -c cloud.yaml\n" +
			"  edgelink fleet status -c cloud.yaml --site 'plant-*' --label region=eu-central\n" +
			"  edgelink fleet status -c cloud.yaml --json",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, opts, err := loadFleetConfig(g, f.file)
			if err != nil {
				return err
			}
			ctx, cancel := timeoutContext(cmd, f.timeout)
			defer cancel()
			view := fleet.NewView(nil)
			if err := fleet.NewReader(opts, fleet.TopicsFor(cfg.Fleet), view, nil).Load(ctx); err != nil {
				return kafka.Explain(fmt.Errorf("read the fleet from cluster %s: %w", cfg.Fleet.Cluster, err), cfg.Clusters[cfg.Fleet.Cluster])
			}
			sites, err := filterSites(view.Sites(), f)
			if err != nil {
				return err
			}
			if f.asJSON {
				fl := view.Fleet(0)
				fl.Sites = sites
				enc := json.NewEncoder(g.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(fl)
			}
			printFleet(g.stdout, view.Fleet(0).Summary, sites)
			return nil
		},
	}
	addConfigFlag(cmd, &f.file)
	cmd.Flags().StringVar(&f.site, "site", "", "only sites with this name, or matching this shell pattern")
	cmd.Flags().StringVar(&f.label, "label", "", "only sites with this label=value")
	cmd.Flags().StringVar(&f.state, "state", "", "only sites in this state (or \"stale\")")
	cmd.Flags().BoolVar(&f.asJSON, "json", false, "print JSON, as GET /api/v1/fleet answers")
	cmd.Flags().DurationVar(&f.timeout, "timeout", 30*time.Second, "how long to try the fleet cluster")
	return cmd
}

// filterSites applies fleet status's filters and sorts worst first.
func filterSites(sites []fleet.Site, f fleetStatusFlags) ([]fleet.Site, error) {
	var sel map[string]string
	if f.label != "" {
		var err error
		if sel, err = fleet.ParseSelector(f.label); err != nil {
			return nil, usageError{fmt.Errorf("--label: %w", err)}
		}
	}
	if f.site != "" {
		if _, err := path.Match(f.site, ""); err != nil {
			return nil, usageError{fmt.Errorf("--site %q: %w", f.site, err)}
		}
	}
	out := []fleet.Site{}
	for _, s := range sites {
		if f.site != "" {
			if ok, _ := path.Match(f.site, s.Site); !ok {
				continue
			}
		}
		if sel != nil && !(fleet.Target{Selector: sel}).Matches(s.Site, s.Labels) {
			continue
		}
		if keep := f.state == "" || f.state == s.State || (f.state == "stale" && s.Stale); !keep {
			continue
		}
		out = append(out, s)
	}
	fleet.SortWorstFirst(out)
	return out, nil
}

// printFleet prints the summary and one row per site.
func printFleet(w io.Writer, sum fleet.Summary, sites []fleet.Site) {
	var states []string
	for _, s := range fleet.SiteStates() {
		if n := sum.ByState[s]; n > 0 {
			states = append(states, fmt.Sprintf("%d %s", n, s))
		}
	}
	fmt.Fprintf(w, "%s, %s: %s; %d silent; %d refused, %d pending a revision\n\n",
		plural(sum.Sites, "site"), plural(sum.Agents, "agent"), strings.Join(states, ", "), sum.Stale, sum.Refused, sum.Pending)
	if len(sites) == 0 {
		fmt.Fprintln(w, "no site matches")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SITE\tSTATE\tLAST SEEN\tLAG\tDATA LOSS IN\tVERSION\tREVISION\tLABELS")
	for _, s := range sites {
		st := s.State
		if s.Stale {
			st += " (SILENT)"
		}
		loss := "-"
		if s.DataLossInSeconds != nil {
			loss = observe.FormatSeconds(*s.DataLossInSeconds)
		}
		lag := "-"
		if s.LagRecords > 0 {
			lag = fmt.Sprintf("%d (%s)", s.LagRecords, observe.FormatSeconds(s.LagSeconds))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s ago\t%s\t%s\t%s\t%s\t%s\n", s.Site, st, observe.FormatSeconds(s.SilentSeconds), lag, loss,
			s.Version, revisionCell(s.Config), labelList(s.Labels))
	}
	_ = tw.Flush()
	for _, s := range sites {
		if s.Config.RefusedReason != "" && s.Config.RefusedRevision >= s.Config.DesiredRevision {
			fmt.Fprintf(w, "%s: revision %d refused: %s\n", s.Site, s.Config.RefusedRevision, s.Config.RefusedReason)
		}
	}
}

// revisionCell is "applied/desired", with the refused revision.
func revisionCell(c fleet.ConfigState) string {
	if !c.Managed && c.DesiredRevision == 0 {
		return "unmanaged"
	}
	s := fmt.Sprintf("%d/%d", c.AppliedRevision, c.DesiredRevision)
	if c.RefusedRevision > 0 && c.RefusedRevision >= c.DesiredRevision {
		verb := "refused"
		if c.Reverted {
			verb = "reverted"
		}
		s += fmt.Sprintf(" (%d %s)", c.RefusedRevision, verb)
	}
	return s
}

func labelList(labels map[string]string) string {
	parts := make([]string, 0, len(labels))
	for k, v := range labels {
		parts = append(parts, k+"="+v)
	}
	if len(parts) == 0 {
		return "-"
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

type fleetApplyFlags struct {
	file, key, doc, note string
	sites                []string
	selector             string
	force                bool
	wait, timeout        time.Duration
}

func newFleetApplyCmd(g *globals) *cobra.Command {
	var f fleetApplyFlags
	cmd := &cobra.Command{
		Use:   "apply -c FILE (--site S... | --selector label=value) --key NAME.key -f AGENT.yaml",
		Short: "Publish a signed revision of the sites' configuration",
		Long: "Sign AGENT.yaml with an operator's ed25519 key (edgelink keygen) and publish it\n" +
			"as the newest revision for the sites: one site per --site, or every site whose\n" +
			"site_labels match --selector. Managed agents (fleet.managed: true) that trust\n" +
			"the key verify it, validate it as edgelink check would, apply it without\n" +
			"restarting unchanged links, and report the outcome; an offline site gets the\n" +
			"newest revision when it reconnects.\n\n" +
			"The document is a whole agent configuration without site, site_labels, fleet\n" +
			"and http, which stay as each site's own file has them. ${VAR} and *_file\n" +
			"references resolve at the site, so secrets never leave it. The document is\n" +
			"validated here first (variables not set here are left to the sites); --force\n" +
			"publishes it anyway. With --wait, wait for the sites' outcomes.",
		Example: "  edgelink fleet apply -c cloud.yaml --site plant-berlin --key ops-anna.key -f agent.yaml\n" +
			"  edgelink fleet apply -c cloud.yaml --selector region=eu-central --key ops-anna.key -f agent.yaml -m \"raise the budget\" --wait 2m",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runFleetApply(cmd, g, f)
		},
	}
	addConfigFlag(cmd, &f.file)
	cmd.Flags().StringArrayVar(&f.sites, "site", nil, "a site the revision is for (repeatable)")
	cmd.Flags().StringVar(&f.selector, "selector", "", "the sites the revision is for, by label: label=value[,label=value]")
	cmd.Flags().StringVar(&f.key, "key", "", "the operator's private key (NAME.key, from edgelink keygen)")
	cmd.Flags().StringVarP(&f.doc, "file", "f", "", "the agent configuration to publish")
	cmd.Flags().StringVarP(&f.note, "message", "m", "", "a note for the history")
	cmd.Flags().BoolVar(&f.force, "force", false, "publish even if the document does not validate here")
	cmd.Flags().DurationVar(&f.wait, "wait", 0, "wait this long for every targeted site that reports to apply or refuse the revision")
	cmd.Flags().DurationVar(&f.timeout, "timeout", 30*time.Second, "how long to try the fleet cluster")
	return cmd
}

func runFleetApply(cmd *cobra.Command, g *globals, f fleetApplyFlags) error {
	switch {
	case len(f.sites) == 0 && f.selector == "":
		return usageError{errors.New("name the sites: --site S (repeatable) or --selector label=value")}
	case len(f.sites) > 0 && f.selector != "":
		return usageError{errors.New("--site and --selector exclude each other")}
	case f.key == "":
		return usageError{errors.New("--key is required: the operator's private key (edgelink keygen --out NAME writes NAME.key)")}
	case f.doc == "":
		return usageError{errors.New("-f is required: the agent configuration to publish")}
	}
	cfg, opts, err := loadFleetConfig(g, f.file)
	if err != nil {
		return err
	}
	var targets []fleet.Target
	for _, s := range f.sites {
		targets = append(targets, fleet.Target{Site: s})
	}
	if f.selector != "" {
		sel, err := fleet.ParseSelector(f.selector)
		if err != nil {
			return usageError{fmt.Errorf("--selector: %w", err)}
		}
		targets = append(targets, fleet.Target{Selector: sel})
	}
	signer, err := signing.LoadPrivate(f.key)
	if err != nil {
		return err
	}
	doc, err := os.ReadFile(f.doc)
	if err != nil {
		return fmt.Errorf("read %s: %w", f.doc, err)
	}
	site := ""
	if len(f.sites) == 1 {
		site = f.sites[0]
	}
	if err := fleet.Validate(doc, site); err != nil {
		if !f.force {
			return usageError{fmt.Errorf("%s does not validate (fix it, or publish anyway with --force):\n%s", f.doc, indent(strings.ReplaceAll(err.Error(), "document:", f.doc+":")))}
		}
		fmt.Fprintf(g.stderr, "warning: %s does not validate; publishing anyway (--force):\n%s\n", f.doc, indent(err.Error()))
	}
	ctx, cancel := timeoutContext(cmd, f.timeout)
	defer cancel()
	revs, err := fleet.Publish(ctx, opts, fleet.TopicsFor(cfg.Fleet), fleet.PublishOptions{Targets: targets, Document: doc, Signer: signer, Note: f.note})
	if err != nil {
		return kafka.Explain(err, cfg.Clusters[cfg.Fleet.Cluster])
	}
	for _, r := range revs {
		fmt.Fprintf(g.stdout, "published revision %d for %s, signed by %s\n", r.Number, r.Target, r.IssuedBy)
	}
	if f.wait <= 0 {
		return nil
	}
	return waitForOutcomes(cmd.Context(), g, opts, cfg, revs[0].Number, targets, f.wait)
}

// waitForOutcomes follows the fleet until every targeted site that reports
// applied or refused revision n, or until wait passed.
func waitForOutcomes(ctx context.Context, g *globals, opts []kgo.Opt, cfg *config.Config, n int64, targets []fleet.Target, wait time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	view := fleet.NewView(nil)
	reader := fleet.NewReader(opts, fleet.TopicsFor(cfg.Fleet), view, nil)
	var wg sync.WaitGroup
	wg.Go(func() { _ = reader.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()
	reported := map[string]bool{}
	for {
		pending := 0
		for _, s := range view.Sites() {
			if !matchesAny(targets, s) || s.Stale {
				continue
			}
			c := s.Config
			switch {
			case c.RefusedRevision == n:
				if !reported[s.Site] {
					fmt.Fprintf(g.stdout, "%s: refused revision %d: %s\n", s.Site, n, c.RefusedReason)
					reported[s.Site] = true
				}
			case c.AppliedRevision >= n:
				if !reported[s.Site] {
					fmt.Fprintf(g.stdout, "%s: applied revision %d\n", s.Site, n)
					reported[s.Site] = true
				}
			default:
				pending++
			}
		}
		select {
		case <-view.Loaded():
			if pending == 0 && len(reported) > 0 {
				return nil
			}
		default:
		}
		select {
		case <-ctx.Done():
			if ctx.Err() == context.DeadlineExceeded {
				return fmt.Errorf("%d reporting sites have not applied or refused revision %d within %s", pending, n, wait)
			}
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func matchesAny(targets []fleet.Target, s fleet.Site) bool {
	for _, t := range targets {
		if t.Matches(s.Site, s.Labels) {
			return true
		}
	}
	return false
}
