package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/fleet"
	"github.com/edgelink/edgelink/internal/kafka"
	"github.com/edgelink/edgelink/internal/link"
	"github.com/edgelink/edgelink/internal/signing"
)

func newCheckCmd(g *globals) *cobra.Command {
	var (
		file    string
		connect bool
		print   bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "check -c FILE [--connect] [--print]",
		Short: "Validate a configuration file (and the clusters' access) and exit",
		Long: "Validate a configuration file: syntax, unknown keys, regexes, cluster names,\n" +
			"environment variables. Exit status 0 when valid, 2 when invalid, 1 otherwise.\n\n" +
			"With --connect, also connect to every cluster (TLS, SASL) and check that each\n" +
			"link's principal has the permissions the link needs at its source and its\n" +
			"destination; each missing one is printed as the kafka-acls.sh command that\n" +
			"grants it. Nothing is written or created. Exit status 1 when a cluster cannot\n" +
			"be reached or a permission is missing.\n\n" +
			"With --print, also print the configuration with its defaults filled in and\n" +
			"its secrets (passwords, client secrets, the HTTP token) redacted.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
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
				for _, t := range l.Transforms {
					switch {
					case t.Filter != "":
						fmt.Fprintf(g.stdout, "    filter %s\n", t.Filter)
					case t.Project != nil && len(t.Project.Keep) > 0:
						fmt.Fprintf(g.stdout, "    project: keep %s\n", strings.Join(t.Project.Keep, ", "))
					case t.Project != nil:
						fmt.Fprintf(g.stdout, "    project: drop %s\n", strings.Join(t.Project.Drop, ", "))
					default:
						fmt.Fprintf(g.stdout, "    %s\n", describeStateful(t))
					}
				}
				if slices.ContainsFunc(l.Transforms, config.Transform.Stateful) {
					fmt.Fprintf(g.stdout, "    state at most %d MiB (max_state)\n", cmp.Or(l.MaxState, config.DefaultMaxState)>>20)
				}
				if err := describeAirGap(g.stdout, l); err != nil {
					return err
				}
			}
			if err := describeFleet(g.stdout, cfg); err != nil {
				return err
			}
			if print {
				fmt.Fprintln(g.stdout)
				if err := printConfig(g.stdout, cfg); err != nil {
					return err
				}
			}
			if !connect {
				return nil
			}
			logger, err := g.logger()
			if err != nil {
				return err
			}
			return checkAccess(cmd.Context(), g.stdout, logger, cfg, timeout)
		},
	}
	addConfigFlag(cmd, &file)
	cmd.Flags().BoolVar(&connect, "connect", false, "connect to every cluster and check each link's permissions")
	cmd.Flags().BoolVar(&print, "print", false, "print the effective configuration, secrets redacted")
	cmd.Flags().DurationVar(&timeout, "connect-timeout", 15*time.Second, "how long to try each cluster")
	return cmd
}

// reachable is a connected cluster.
type reachable struct {
	cl        *kgo.Client
	info      *kafka.ClusterInfo
	principal string
}

// checkAccess connects to every cluster and checks every link's
// permissions, printing a report to w. It returns an error when a cluster
// is unreachable, a permission is missing or a mirror topic name is illegal.
func checkAccess(ctx context.Context, w io.Writer, logger *slog.Logger, cfg *config.Config, timeout time.Duration) error {
	fmt.Fprintln(w)
	clusters := make(map[string]*reachable)
	defer func() {
		for _, r := range clusters {
			r.cl.Close()
		}
	}()
	var problems []string
	later := 0 // missing permissions needed only when the source changes
	for _, name := range cfg.ClusterOrder {
		c := cfg.Clusters[name]
		cctx, cancel := context.WithTimeout(ctx, timeout)
		cl, info, err := kafka.Connect(cctx, c, logger, kafka.Dial{}, kafka.AccessOpts()...)
		if err != nil {
			cancel()
			fmt.Fprintf(w, "cluster %s (%s): FAILED: %v\n", name, strings.Join(c.Bootstrap, ","), err)
			problems = append(problems, fmt.Sprintf("cluster %s: %v", name, err))
			continue
		}
		r := &reachable{cl: cl, info: info, principal: kafka.Principal(cctx, c)}
		cancel()
		clusters[name] = r
		fmt.Fprintf(w, "cluster %s (%s): connected as %s (%s), cluster id %s, %s\n", name, strings.Join(c.Bootstrap, ","),
			r.principal, security(c), info.ClusterID, plural(len(info.Brokers), "broker"))
	}

	// Missing ACLs per cluster, in the order found, without repeats.
	missing := make(map[string][]kafka.ACL)
	for _, lc := range cfg.Links {
		src, dst := clusters[lc.From], clusters[lc.To]
		fmt.Fprintf(w, "link %s (%s -> %s):\n", lc.Name, lc.From, lc.To)
		if src == nil {
			fmt.Fprintf(w, "  not checked: source cluster %s unreachable\n", lc.From)
			continue
		}
		topics, notes := sourceTopics(src.info, lc)
		for _, n := range notes {
			fmt.Fprintf(w, "  note: %s\n", n)
		}
		fmt.Fprintf(w, "  %s selected at the source\n", plural(len(topics), "topic"))
		for _, t := range topics {
			m, err := link.MirrorTopic(cfg.Site, lc, t)
			state := ""
			switch {
			case err != nil:
				state = "NOT REPLICATED: " + err.Error() + " (check the link's rename)"
				problems = append(problems, fmt.Sprintf("link %s: mirror topic for %s: %v", lc.Name, t, err))
			case dst == nil:
			case dst.info.Topics[m] > 0:
				state = "exists"
			default:
				state = "to be created"
			}
			fmt.Fprintf(w, "    %s -> %s", t, m)
			if state != "" {
				fmt.Fprintf(w, " (%s)", state)
			}
			fmt.Fprintln(w)
		}
		srcNeeds, dstNeeds := link.Needs(cfg.Site, lc, topics)
		sides := []struct {
			role, cluster string
			r             *reachable
			needs         []kafka.Need
		}{{"source", lc.From, src, srcNeeds}, {"destination", lc.To, dst, dstNeeds}}
		for _, s := range sides {
			if s.r == nil {
				fmt.Fprintf(w, "  %s %s: not checked (unreachable)\n", s.role, s.cluster)
				continue
			}
			cctx, cancel := context.WithTimeout(ctx, timeout)
			findings, err := kafka.CheckAccess(cctx, s.r.cl, s.needs)
			cancel()
			if err != nil {
				err = kafka.Explain(err, cfg.Clusters[s.cluster])
				fmt.Fprintf(w, "  %s %s: FAILED: %v\n", s.role, s.cluster, err)
				problems = append(problems, fmt.Sprintf("link %s: check %s %s: %v", lc.Name, s.role, s.cluster, err))
				continue
			}
			p, l := report(w, "link "+lc.Name, s.role, s.cluster, s.r.principal, findings, missing)
			problems, later = append(problems, p...), later+l
		}
	}
	if f := cfg.Fleet; f != nil && cfg.Site != "" {
		fmt.Fprintf(w, "fleet (%s):\n", f.Cluster)
		if r := clusters[f.Cluster]; r == nil {
			fmt.Fprintf(w, "  not checked: cluster %s unreachable\n", f.Cluster)
		} else {
			cctx, cancel := context.WithTimeout(ctx, timeout)
			findings, err := kafka.CheckAccess(cctx, r.cl, fleet.Needs(f))
			cancel()
			if err != nil {
				err = kafka.Explain(err, cfg.Clusters[f.Cluster])
				fmt.Fprintf(w, "  FAILED: %v\n", err)
				problems = append(problems, fmt.Sprintf("fleet: check %s: %v", f.Cluster, err))
			} else {
				p, l := report(w, "fleet", "cluster", f.Cluster, r.principal, findings, missing)
				problems, later = append(problems, p...), later+l
			}
		}
	}
	if len(missing) > 0 {
		fmt.Fprintln(w, "\nto grant the missing permissions, run as an administrator of each cluster:")
		for _, name := range cfg.ClusterOrder {
			for _, a := range missing[name] {
				fmt.Fprintf(w, "  %s\n", a.Command(cfg.Clusters[name].Bootstrap[0]))
			}
		}
	}
	if len(problems) == 0 {
		fmt.Fprint(w, "\nall clusters reachable; every link has the permissions it needs")
		if later > 0 {
			fmt.Fprintf(w, " to start (%s needed later missing, see above)", plural(later, "permission"))
		}
		fmt.Fprintln(w)
		return nil
	}
	return fmt.Errorf("check failed: %s", strings.Join(problems, "; "))
}

// report prints one side's findings and adds its missing ACLs to missing;
// it returns the problems (missing required permissions) and the number of
// missing permissions needed only later.
func report(w io.Writer, what, role, cluster, principal string, findings []kafka.Finding, missing map[string][]kafka.ACL) (problems []string, laterMissing int) {
	var req, later, unknown []kafka.Finding
	needed := 0
	for _, f := range findings {
		if f.Verdict == kafka.NotNeeded {
			continue
		}
		needed++
		switch {
		case f.Verdict == kafka.Unknown:
			unknown = append(unknown, f)
		case f.Verdict != kafka.Missing:
		case f.Later:
			later = append(later, f)
		default:
			req = append(req, f)
		}
	}
	if len(req) == 0 && len(later) == 0 && len(unknown) == 0 {
		fmt.Fprintf(w, "  %s %s: %s granted to %s\n", role, cluster, plural(needed, "permission"), principal)
		return nil, 0
	}
	if len(req) > 0 {
		fmt.Fprintf(w, "  %s %s: %s of %d MISSING for %s:\n", role, cluster, plural(len(req), "permission"), needed, principal)
		for _, f := range req {
			printMissing(w, principal, f, cluster, missing)
		}
		problems = append(problems, fmt.Sprintf("%s: %s missing on %s cluster %s", what, plural(len(req), "permission"), role, cluster))
	}
	if len(later) > 0 {
		fmt.Fprintf(w, "  %s %s: %s needed later, when the source topics change, missing for %s:\n", role, cluster, plural(len(later), "permission"), principal)
		for _, f := range later {
			printMissing(w, principal, f, cluster, missing)
		}
	}
	for _, f := range unknown {
		fmt.Fprintf(w, "  %s %s: could not check %s on %s: %s\n", role, cluster, kafka.OperationName(f.Op), f.Name, f.Note)
	}
	return problems, len(later)
}

func printMissing(w io.Writer, principal string, f kafka.Finding, cluster string, missing map[string][]kafka.ACL) {
	a := kafka.ACLFor(principal, f.Need)
	fmt.Fprintf(w, "    %s: to %s\n", a, f.For)
	if !slices.Contains(missing[cluster], a) {
		missing[cluster] = append(missing[cluster], a)
	}
}

// sourceTopics returns the topics lc selects among those the source shows,
// plus the literal include patterns it does not show (they may not exist
// yet, or be hidden from the principal), and notes for include patterns
// that select nothing.
func sourceTopics(info *kafka.ClusterInfo, lc *config.Link) (topics, notes []string) {
	for _, t := range info.TopicNames() {
		if !strings.HasPrefix(t, "__") && lc.Topics.Match(t) {
			topics = append(topics, t)
		}
	}
	for _, p := range lc.Topics.Include {
		if lit, ok := literal(p); ok {
			if !slices.Contains(topics, lit) && !strings.HasPrefix(lit, "__") && lc.Topics.Match(lit) {
				topics = append(topics, lit)
				notes = append(notes, fmt.Sprintf("topic %s is not visible at the source: it does not exist yet, or the principal may not describe it", lit))
			}
			continue
		}
		re := regexp.MustCompile("^(?:" + p + ")$")
		if slices.ContainsFunc(topics, re.MatchString) {
			continue
		}
		n := fmt.Sprintf("no visible source topic matches %q: none exists yet, or the principal may not describe them", p)
		if prefix, _ := regexp.MustCompile(p).LiteralPrefix(); prefix != "" {
			n += fmt.Sprintf(" (ACLs with --resource-pattern-type prefixed --topic %s would cover them)", prefix)
		}
		notes = append(notes, n)
	}
	slices.Sort(topics)
	return topics, notes
}

// literal returns the topic name a pattern matches when it matches
// exactly one.
func literal(pattern string) (string, bool) {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return "", false
	}
	re = re.Simplify()
	if re.Op != syntax.OpLiteral || re.Flags&syntax.FoldCase != 0 {
		return "", false
	}
	return string(re.Rune), true
}

// security describes how edgelink authenticates to c, never with secrets.
func security(c *config.Cluster) string {
	var parts []string
	if c.SASL != nil {
		parts = append(parts, "SASL "+c.SASL.Mechanism)
	}
	if c.TLS != nil && c.TLS.Enabled {
		t := "TLS"
		if c.TLS.CertFile != "" {
			t += " with client certificate"
		}
		if c.TLS.InsecureSkipVerify {
			t += ", server NOT VERIFIED"
		}
		parts = append(parts, t)
	}
	if len(parts) == 0 {
		return "plaintext, no authentication"
	}
	return strings.Join(parts, ", ")
}

func addConfigFlag(cmd *cobra.Command, file *string) {
	cmd.Flags().StringVarP(file, "config", "c", "", "configuration file (YAML), required")
}

func requireConfig(file string) error {
	if file == "" {
		return usageError{errors.New("no configuration file: pass -c FILE (see examples/edgelink.yaml)")}
	}
	return nil
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// describeFleet prints what the fleet block does; it checks, as the agent
// will at its start, that a managed agent's trusted keys load.
func describeFleet(w io.Writer, cfg *config.Config) error {
	f := cfg.Fleet
	if f == nil {
		return nil
	}
	if cfg.Site == "" {
		fmt.Fprintf(w, "  fleet: %s (no site: for fleet serve, status and apply; edgelink run needs a site)\n", f.Cluster)
		return nil
	}
	fmt.Fprintf(w, "  fleet: reports to %s every %s", f.Cluster, f.Interval)
	if !f.Managed {
		fmt.Fprintln(w)
		return nil
	}
	ring, err := signing.LoadKeyring(f.TrustedKeys)
	if err != nil {
		fmt.Fprintln(w)
		return fmt.Errorf("fleet.trusted_keys: %w", err)
	}
	fmt.Fprintf(w, "; managed, trusting %s (%s), reverting after %s\n", plural(ring.Len(), "key"), strings.Join(ring.KeyIDs(), ", "), f.RevertAfter)
	return nil
}

// describeStateful says what a downsample, dedupe or aggregate does, for
// check.
func describeStateful(t config.Transform) string {
	var b strings.Builder
	switch {
	case t.Downsample != nil:
		fmt.Fprintf(&b, "downsample: first record per key %s every %s", t.Downsample.Key, t.Downsample.Every)
	case t.Dedupe != nil:
		fmt.Fprintf(&b, "dedupe: drop a key %s seen within %s", t.Dedupe.Key, t.Dedupe.Horizon)
	case t.Aggregate != nil:
		a := t.Aggregate
		fns := a.Functions
		if len(fns) == 0 {
			fns = config.AggregateFunctions
		}
		var vals []string
		for _, n := range slices.Sorted(maps.Keys(a.Values)) {
			vals = append(vals, n+" = "+a.Values[n])
		}
		fmt.Fprintf(&b, "aggregate: %s windows (grace %s) per key %s, %s of %s", a.Window, a.Grace, a.Key, strings.Join(fns, ", "), strings.Join(vals, "; "))
	}
	o := t.Outputs()
	if o.To != "" {
		fmt.Fprintf(&b, ", output to %s", o.To)
	}
	if o.Late != "" {
		fmt.Fprintf(&b, ", late records to %s", o.Late)
	}
	return b.String()
}

// describeAirGap says how a link crosses an air gap, loading the keys it
// names so that a missing or malformed key shows now, not at the gap.
func describeAirGap(w io.Writer, l *config.Link) error {
	if d := l.Diode; d != nil {
		_, red, err := link.DiodeSettings(d)
		if err != nil {
			return fmt.Errorf("link %s: %w", l.Name, err)
		}
		to, rate := "(no send_to: a receiver's configuration)", "unlimited"
		if d.SendTo != "" {
			to = "to " + d.SendTo
		}
		if d.Rate > 0 {
			rate = humanBytes(d.Rate) + "/s"
		}
		fmt.Fprintf(w, "    crosses an air gap through a data diode %s at %s, redundancy %s\n", to, rate, red)
		return nil
	}
	b := l.Bundle
	if b == nil {
		return nil
	}
	fmt.Fprintf(w, "    crosses an air gap in bundles (chunks of at most %s)\n", humanBytes(b.ChunkSize))
	if b.SigningKey != "" {
		s, err := signing.LoadPrivate(b.SigningKey)
		if err != nil {
			return fmt.Errorf("link %s: bundle.signing_key: %w", l.Name, err)
		}
		fmt.Fprintf(w, "    exports signed by %s (%s)\n", s.Name(), s.KeyID())
	}
	if len(b.EncryptTo) > 0 {
		rs, err := ageRecipients(b.EncryptTo)
		if err != nil {
			return fmt.Errorf("link %s: bundle.%w", l.Name, err)
		}
		fmt.Fprintf(w, "    exports encrypted to %s\n", plural(len(rs), "recipient"))
	}
	if len(b.TrustedKeys) > 0 {
		r, err := signing.LoadKeyring(b.TrustedKeys)
		if err != nil {
			return fmt.Errorf("link %s: bundle.trusted_keys: %w", l.Name, err)
		}
		fmt.Fprintf(w, "    imports bundles signed by %s\n", strings.Join(r.KeyIDs(), ", "))
	}
	if len(b.DecryptWith) > 0 {
		ids, err := ageIdentities(b.DecryptWith)
		if err != nil {
			return fmt.Errorf("link %s: bundle.%w", l.Name, err)
		}
		fmt.Fprintf(w, "    imports decrypt with %s\n", plural(len(ids), "key"))
	}
	return nil
}
