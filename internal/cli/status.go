package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/fleet"
	"github.com/edgelink/edgelink/internal/observe"
	"github.com/edgelink/edgelink/internal/status"
)

// envToken names the variable that holds the status API's bearer token for
// `edgelink status`, so that it need not appear on the command line.
const envToken = "EDGELINK_TOKEN"

// statusEvents is how many recent events `edgelink status` shows per link.
const statusEvents = 5

type statusFlags struct {
	file, url, token, caFile string
	asJSON                   bool
	timeout                  time.Duration
}

func newStatusCmd(g *globals) *cobra.Command {
	var f statusFlags
	cmd := &cobra.Command{
		Use:   "status [-c FILE | --url URL]",
		Short: "Show what a running agent is doing: its links, their state, lag and recent events",
		Long: "Read the status API (/api/v1/status) of a running agent and print it as tables.\n\n" +
			"The agent is found at --url, else at the http.listen address of the\n" +
			"configuration given with -c (https when http.tls is set, whose certificate is\n" +
			"then trusted), else at http://" + config.DefaultHTTPListen + ". The bearer token is --token,\n" +
			"else $" + envToken + ", else the configuration's http.token or http.token_file.",
		Example: "  edgelink status\n" +
			"  edgelink status -c /etc/edgelink/edgelink.yaml\n" +
			"  EDGELINK_TOKEN=... edgelink status --url https://10.0.0.5:9644 --ca-file ca.pem --json",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runStatus(cmd.Context(), g, f)
		},
	}
	cmd.Flags().StringVarP(&f.file, "config", "c", "", "configuration file of the agent (for its http section)")
	cmd.Flags().StringVar(&f.url, "url", "", "the agent's HTTP address, e.g. http://127.0.0.1:9644")
	cmd.Flags().StringVar(&f.token, "token", "", "bearer token (default $"+envToken+" or the configuration's)")
	cmd.Flags().StringVar(&f.caFile, "ca-file", "", "PEM CA certificates to trust for https")
	cmd.Flags().BoolVar(&f.asJSON, "json", false, "print the status API's JSON as is")
	cmd.Flags().DurationVar(&f.timeout, "timeout", 10*time.Second, "how long to wait for the agent")
	return cmd
}

func runStatus(ctx context.Context, g *globals, f statusFlags) error {
	target, token, roots, err := statusTarget(f)
	if err != nil {
		return err
	}
	body, err := fetchStatus(ctx, target, token, roots, f.timeout)
	if err != nil {
		return err
	}
	if f.asJSON {
		_, err := g.stdout.Write(body)
		return err
	}
	var st status.Snapshot
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("read the status from %s: %w", target, err)
	}
	printStatus(g.stdout, &st, time.Now())
	var withFleet struct {
		Fleet *fleet.UplinkState `json:"fleet"`
	}
	if err := json.Unmarshal(body, &withFleet); err == nil && withFleet.Fleet != nil {
		printUplink(g.stdout, withFleet.Fleet, time.Now())
	}
	return nil
}

// statusTarget resolves the status API's URL, the token and the CAs to
// trust (nil: the system's) from the flags and the configuration.
func statusTarget(f statusFlags) (string, string, *x509.CertPool, error) {
	var cfg *config.Config
	if f.file != "" {
		var err error
		if cfg, err = config.Load(f.file); err != nil {
			return "", "", nil, err
		}
	}
	base := f.url
	if base == "" {
		base = "http://" + config.DefaultHTTPListen
		if cfg != nil {
			u, err := listenURL(cfg.HTTP)
			if err != nil {
				return "", "", nil, err
			}
			base = u
		}
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", "", nil, usageError{fmt.Errorf("--url %q: want http://HOST:PORT or https://HOST:PORT", base)}
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/api/v1/status"

	token := f.token
	if token == "" {
		token = os.Getenv(envToken)
	}
	if token == "" && cfg != nil {
		token = cfg.HTTP.Token
		if cfg.HTTP.TokenFile != "" {
			b, err := os.ReadFile(cfg.HTTP.TokenFile)
			if err != nil {
				return "", "", nil, fmt.Errorf("read http.token_file: %w", err)
			}
			token = strings.TrimSpace(string(b))
		}
	}

	var roots *x509.CertPool
	var pems []string
	if f.caFile != "" {
		pems = append(pems, f.caFile)
	}
	if cfg != nil && cfg.HTTP.TLS != nil && f.url == "" {
		// The agent's own certificate, for a self-signed one.
		pems = append(pems, cfg.HTTP.TLS.CertFile)
	}
	if len(pems) > 0 {
		if roots, err = x509.SystemCertPool(); err != nil {
			roots = x509.NewCertPool()
		}
		for _, p := range pems {
			b, err := os.ReadFile(p)
			if err != nil {
				return "", "", nil, fmt.Errorf("read CA certificates: %w", err)
			}
			if !roots.AppendCertsFromPEM(b) {
				return "", "", nil, fmt.Errorf("%s holds no PEM certificate", p)
			}
		}
	}
	return u.String(), token, roots, nil
}

// listenURL is the base URL at which a local client reaches the server
// configured by h.
func listenURL(h config.HTTP) (string, error) {
	listen := h.Listen
	if listen == "" {
		listen = config.DefaultHTTPListen
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("http.listen %q: %w", listen, err)
	}
	if port == "0" {
		return "", usageError{fmt.Errorf("http.listen %q picks a free port at start: pass the agent's address with --url (it logs it as \"http server listening\")", listen)}
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	scheme := "http"
	if h.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port), nil
}

// fetchStatus gets the status API's body, with errors that say what to do.
func fetchStatus(ctx context.Context, target, token string, roots *x509.CertPool, timeout time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, fmt.Errorf("status request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	client := &http.Client{Transport: &http.Transport{
		Proxy:           http.ProxyFromEnvironment,
		TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots},
	}}
	defer client.CloseIdleConnections()
	res, err := client.Do(req)
	if err != nil {
		var uerr x509.UnknownAuthorityError
		switch {
		case errors.Is(err, syscall.ECONNREFUSED):
			return nil, fmt.Errorf("no agent answers at %s: is `edgelink run` (or `edgelink demo`) running, and is this its http.listen address? (%w)", target, err)
		case errors.As(err, &uerr):
			return nil, fmt.Errorf("get %s: the agent's certificate is not trusted: pass its CA with --ca-file, or -c with its configuration (%w)", target, err)
		default:
			return nil, fmt.Errorf("get %s: %w", target, err)
		}
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", target, err)
	}
	switch res.StatusCode {
	case http.StatusOK:
		return body, nil
	case http.StatusUnauthorized:
		if token == "" {
			return nil, fmt.Errorf("the agent at %s requires a token: pass --token, set $%s, or -c with its configuration", target, envToken)
		}
		return nil, fmt.Errorf("the agent at %s refused the token: check --token, $%s or the configuration's http.token", target, envToken)
	default:
		var e observe.ErrorResponse
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("get %s: %s: %s", target, res.Status, e.Error)
		}
		return nil, fmt.Errorf("get %s: %s (is this an edgelink agent?)", target, res.Status)
	}
}

// printStatus writes the status as a summary line and, per link, its
// topics and recent events.
func printStatus(w io.Writer, st *status.Snapshot, now time.Time) {
	head := "edgelink " + st.Version
	if st.Site != "" {
		head += " · site " + st.Site
	}
	ready := "ready"
	if !st.Ready {
		ready = "NOT READY: " + st.Reason
	}
	fmt.Fprintf(w, "%s · %s · up %s\n\n", head, ready, observe.FormatSeconds(now.Sub(st.StartedAt).Seconds()))
	if len(st.Links) == 0 {
		fmt.Fprintln(w, "no links are configured")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "LINK\tROUTE\tSTATE\tFOR\tREPLICATED\tRATE\tLAG\tBEHIND\tLOST\tERROR")
	for _, l := range st.Links {
		lag := observe.FormatCount(l.Backlog.Records)
		if l.Backlog.Estimated {
			lag += "*"
		}
		state := l.State
		if l.LinkCut != nil && *l.LinkCut {
			state += " (cut)"
		}
		errText := "-"
		if l.LastError != "" && l.State != "live" && l.State != "catching-up" {
			errText = l.LastError
		}
		fmt.Fprintf(tw, "%s\t%s → %s\t%s\t%s\t%s\t%s/s\t%s\t%s\t%s\t%s\n",
			l.Name, l.From, l.To, state, observe.FormatSeconds(l.StateSeconds),
			observe.FormatCount(l.Records), observe.FormatCount(int64(l.RecordsPerSecond+0.5)),
			lag, observe.FormatSeconds(l.Backlog.AgeSeconds), observe.FormatCount(l.LostRecords), errText)
	}
	_ = tw.Flush()
	for _, l := range st.Links {
		if l.Backlog.Estimated {
			fmt.Fprintln(w, "* during an outage: the last measured lag plus what the source gained since")
			break
		}
	}
	for _, l := range st.Links {
		fmt.Fprintf(w, "\n%s topics\n", l.Name)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  SOURCE\tDESTINATION\tPARTITIONS\tPRIORITY\tREPLICATED\tLAG")
		for _, t := range l.Topics {
			fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%s\t%s\n", t.Source, t.Destination, t.Partitions, t.Priority,
				observe.FormatCount(t.Records), observe.FormatCount(t.BacklogRecords))
		}
		if len(l.Topics) == 0 {
			fmt.Fprintln(tw, "  (none yet)")
		}
		_ = tw.Flush()
		printSharing(w, l)
		if len(l.Events) > 0 {
			fmt.Fprintf(w, "%s recent events\n", l.Name)
			for _, e := range l.Events[:min(statusEvents, len(l.Events))] {
				fmt.Fprintf(w, "  %s  %-7s %s\n", e.Time.Local().Format("2006-01-02 15:04:05"), e.Kind, e.Message)
			}
		}
	}
}

// printSharing prints which agent owns which of a link's slots.
func printSharing(w io.Writer, l status.LinkStatus) {
	sh := l.Sharing
	if sh == nil {
		return
	}
	fmt.Fprintf(w, "%s agents (group %s, generation %d, %d slots)\n", l.Name, sh.Group, sh.Generation, sh.SlotCount)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  AGENT\tHOST\tPID\tSLOTS\tPARTITIONS")
	for _, a := range sh.Agents {
		name := a.Instance
		if a.Self {
			name += " (this agent)"
		}
		slots := make([]string, len(a.Slots))
		for i, s := range a.Slots {
			slots[i] = strconv.Itoa(s)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%s\t%d\n", name, a.Host, a.PID, strings.Join(slots, ","), a.Partitions)
	}
	_ = tw.Flush()
}

// printUplink prints the agent's connection to the fleet.
func printUplink(w io.Writer, u *fleet.UplinkState, now time.Time) {
	line := "fleet: reports to " + u.Cluster
	switch {
	case u.LastError != "":
		line += fmt.Sprintf(": NOT REPORTING (%d failed attempts): %s", u.Failed, u.LastError)
	case u.LastPublished != nil:
		line += ", last " + observe.FormatSeconds(now.Sub(*u.LastPublished).Seconds()) + " ago"
	default:
		line += ": connecting"
	}
	fmt.Fprintln(w, "\n"+line)
	if !u.Managed {
		return
	}
	c := u.Config
	line = fmt.Sprintf("configuration: managed, revision %d applied (last good %d, newest %d)", c.AppliedRevision, c.GoodRevision, c.DesiredRevision)
	if c.AppliedBy != "" {
		line += ", signed by " + c.AppliedBy
	}
	fmt.Fprintln(w, line)
	if c.RefusedRevision > 0 {
		verb := "refused"
		if c.Reverted {
			verb = "reverted"
		}
		fmt.Fprintf(w, "revision %d %s: %s\n", c.RefusedRevision, verb, c.RefusedReason)
	}
}
