package cli

import (
	"fmt"
	"io"
	"strconv"
	"time"

	"go.yaml.in/yaml/v4"

	"github.com/edgelink/edgelink/internal/config"
)

// printConfig writes cfg, with its defaults filled in and its secrets
// redacted, as YAML that loads again (with "[redacted]" for each secret).
func printConfig(w io.Writer, cfg *config.Config) error {
	cfg = cfg.Redacted()
	clusters := mapping()
	for _, name := range cfg.ClusterOrder {
		c := cfg.Clusters[name]
		cl := mapping("bootstrap", strs(c.Bootstrap), "client_id", str(c.ClientID))
		if t := c.TLS; t != nil {
			add(cl, "tls", mapping("enabled", boolean(t.Enabled), "ca_file", str(t.CAFile), "cert_file", str(t.CertFile),
				"key_file", str(t.KeyFile), "server_name", str(t.ServerName), "insecure_skip_verify", boolean(t.InsecureSkipVerify)))
		}
		if s := c.SASL; s != nil {
			add(cl, "sasl", mapping("mechanism", str(s.Mechanism), "username", str(s.Username), "password", str(s.Password),
				"password_file", str(s.PasswordFile), "token_url", str(s.TokenURL), "client_id", str(s.ClientID),
				"client_secret", str(s.ClientSecret), "client_secret_file", str(s.ClientSecretFile), "scope", str(s.Scope)))
		}
		add(clusters, name, cl)
	}
	links := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	for _, l := range cfg.Links {
		m := mapping("name", str(l.Name), "from", str(l.From), "to", str(l.To),
			"topics", mapping("include", strs(l.Topics.Include), "exclude", strs(l.Topics.Exclude)),
			"rename", str(l.Rename), "start", str(string(l.Start)), "delivery", str(string(l.Delivery)),
			"on_error", str(string(l.OnError)), "checkpoint_topic", str(l.CheckpointTopic),
			"commit_interval", duration(l.CommitInterval), "discovery_interval", duration(l.DiscoveryInterval),
			"profile", str(string(l.Profile)), "compression", str(l.Compression))
		if l.Bandwidth > 0 {
			add(m, "bandwidth", str(strconv.FormatInt(l.Bandwidth, 10)+"B/s"))
		}
		if len(l.BandwidthSchedule) > 0 {
			s := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
			for _, win := range l.BandwidthSchedule {
				days := make([]string, len(win.Days))
				for i, d := range win.Days {
					days[i] = d.String()[:3]
				}
				rate := "unlimited"
				if win.Rate > 0 {
					rate = strconv.FormatInt(win.Rate, 10) + "B/s"
				}
				s.Content = append(s.Content, mapping("days", strs(days), "from", str(clock(win.From)), "to", str(clock(win.To)), "rate", str(rate)))
			}
			add(m, "bandwidth_schedule", s)
		}
		if len(l.Priorities) > 0 {
			s := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
			for _, p := range l.Priorities {
				s.Content = append(s.Content, mapping("match", str(p.Match), "priority", integer(p.Weight)))
			}
			add(m, "priorities", s)
		}
		o := l.Tuning
		tuning := mapping("dial_timeout", duration(o.DialTimeout), "request_timeout", duration(o.RequestTimeout),
			"produce_timeout", duration(o.ProduceTimeout), "fetch_max_wait", duration(o.FetchMaxWait),
			"transaction_time", duration(o.TransactionTime))
		if o.BatchBytes > 0 {
			add(tuning, "batch_bytes", str(strconv.Itoa(o.BatchBytes)))
		}
		if len(tuning.Content) > 0 {
			add(m, "tuning", tuning)
		}
		links.Content = append(links.Content, m)
	}
	h := cfg.HTTP
	httpBlock := mapping("listen", str(h.Listen), "token", str(h.Token), "token_file", str(h.TokenFile))
	if h.TLS != nil {
		add(httpBlock, "tls", mapping("cert_file", str(h.TLS.CertFile), "key_file", str(h.TLS.KeyFile)))
	}
	root := mapping("site", str(cfg.Site), "clusters", clusters, "links", links, "http", httpBlock)
	out, err := yaml.Dump(root)
	if err != nil {
		return fmt.Errorf("render configuration: %w", err)
	}
	_, err = w.Write(out)
	return err
}

// mapping builds a mapping from key, value pairs, leaving out empty values.
func mapping(kv ...any) *yaml.Node {
	m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for i := 0; i+1 < len(kv); i += 2 {
		add(m, kv[i].(string), kv[i+1].(*yaml.Node))
	}
	return m
}

func add(m *yaml.Node, key string, v *yaml.Node) {
	if v == nil || v.Kind == yaml.ScalarNode && v.Value == "" || v.Kind == yaml.SequenceNode && len(v.Content) == 0 {
		return
	}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, v)
}

// str is a string scalar; "${" is escaped so that it loads as written.
func str(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: escapeVars(s)}
}

func escapeVars(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '$' && i+1 < len(s) && s[i+1] == '{' {
			out = append(out, '$')
		}
		out = append(out, s[i])
	}
	return string(out)
}

func strs(list []string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	for _, s := range list {
		n.Content = append(n.Content, str(s))
	}
	return n
}

func boolean(b bool) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(b)}
}

func integer(i int) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(i)}
}

func duration(d time.Duration) *yaml.Node {
	if d == 0 {
		return nil
	}
	return str(d.String())
}

func clock(minutes int) string { return fmt.Sprintf("%02d:%02d", minutes/60, minutes%60) }
