package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v4"
)

// Valid keys at each level of the file, in the order the documentation
// presents them.
var (
	rootKeys     = []string{"site", "clusters", "links", "http"}
	clusterKeys  = []string{"bootstrap", "client_id", "tls", "sasl"}
	tlsKeys      = []string{"enabled", "ca_file", "cert_file", "key_file", "server_name", "insecure_skip_verify"}
	saslKeys     = []string{"mechanism", "username", "password", "password_file", "token_url", "client_id", "client_secret", "client_secret_file", "scope"}
	linkKeys     = []string{"name", "from", "to", "topics", "rename", "start", "delivery", "on_error", "checkpoint_topic", "commit_interval", "discovery_interval", "profile", "compression", "bandwidth", "bandwidth_schedule", "priorities", "tuning"}
	topicsKeys   = []string{"include", "exclude"}
	priorityKeys = []string{"match", "priority"}
	windowKeys   = []string{"days", "from", "to", "rate"}
	tuningKeys   = []string{"dial_timeout", "request_timeout", "produce_timeout", "fetch_max_wait", "batch_bytes", "transaction_time"}
	httpKeys     = []string{"listen", "tls", "token", "token_file", "pprof"}
	httpTLSKeys  = []string{"cert_file", "key_file"}
)

var (
	siteRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
	nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	// simpleKeyRE matches keys that can be written after a dot in a field path.
	simpleKeyRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
)

const nameHint = `use letters, digits, ".", "_" and "-", starting with a letter or digit`

// decoder walks the YAML node tree, building a Config and collecting every
// problem it finds.
type decoder struct {
	file   string
	data   []byte
	lookup LookupFunc
	errs   Errors
	// quiet holds the paths of fields that are not reported as missing:
	// fields an unknown key was reported as a misspelling of, and whole
	// mappings with a (reported) merge key.
	quiet map[string]bool
}

// entry is a YAML value together with where it sits in the file.
type entry struct {
	// key is the mapping key the value belongs to; nil for list items and
	// the document root.
	key *yaml.Node
	// val is the value, with aliases resolved.
	val *yaml.Node
	// path is the field path, such as "clusters.cloud.bootstrap[0]".
	path string
}

// pos is the node an error about e points at: the value, or the key when
// the value is empty (an empty value has no useful position of its own).
func (e entry) pos() *yaml.Node {
	if e.key != nil && isNull(e.val) {
		return e.key
	}
	return e.val
}

// fail records a problem at node n.
func (d *decoder) fail(n *yaml.Node, field, msg, hint string) {
	e := &Error{File: d.file, Field: field, Msg: msg, Hint: hint}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	d.errs = append(d.errs, e)
}

// missing records that a required field is absent from the mapping parent,
// unless an unknown key was already reported as a misspelling of it.
func (d *decoder) missing(parent entry, key, hint string) {
	path := childPath(parent.path, key)
	if d.quiet[path] || d.quiet[parent.path] {
		return
	}
	d.fail(parent.pos(), path, "missing required field", hint)
}

// hush stops missing from reporting the field at path, or the fields of
// the mapping at path.
func (d *decoder) hush(path string) {
	if d.quiet == nil {
		d.quiet = map[string]bool{}
	}
	d.quiet[path] = true
}

// decode parses d.data into a Config. The Config is meaningful only when no
// errors were recorded.
func (d *decoder) decode() *Config {
	root, ok := d.document()
	if !ok {
		return nil
	}
	cfg := &Config{File: d.file, HTTP: HTTP{Listen: DefaultHTTPListen}}
	if root.Kind != yaml.MappingNode {
		d.fail(root, "", "expected a mapping of settings (site, clusters, links, http), got "+describe(root), "")
		return cfg
	}
	top, _ := d.fields(entry{val: root}, rootKeys, "the configuration")
	siteOK := true
	if e, ok := top["site"]; ok {
		cfg.Site, siteOK = d.site(e)
	}
	var clusters []entry
	clustersOK := false
	if e, ok := top["clusters"]; !ok {
		d.missing(entry{val: root}, "clusters", "define at least one cluster")
	} else {
		clusters, clustersOK = d.pairs(e, "a mapping of cluster names to cluster settings")
		if clustersOK && len(clusters) == 0 {
			d.fail(e.pos(), e.path, "no clusters defined", "define at least one cluster, e.g. edge: {bootstrap: [\"127.0.0.1:9092\"]}")
		}
	}
	cfg.Clusters = make(map[string]*Cluster, len(clusters))
	for _, c := range clusters {
		cl := d.cluster(c)
		cfg.Clusters[cl.Name] = cl
		cfg.ClusterOrder = append(cfg.ClusterOrder, cl.Name)
	}
	if e, ok := top["links"]; ok {
		lc := linkChecker{
			clustersOK: clustersOK,
			clusters:   cfg.ClusterOrder,
			// An invalid site was reported already; do not report it again
			// as missing.
			siteSet: cfg.Site != "" || !siteOK,
			names:   map[string]int{},
		}
		items, _ := d.list(e, "a list of links")
		for _, item := range items {
			if l := d.link(item, &lc); l != nil {
				cfg.Links = append(cfg.Links, l)
			}
		}
	}
	if e, ok := top["http"]; ok {
		cfg.HTTP = d.http(e)
	}
	return cfg
}

// document parses the YAML text and returns the root node of its single
// document.
func (d *decoder) document() (*yaml.Node, bool) {
	loader, err := yaml.NewLoader(bytes.NewReader(d.data))
	if err != nil {
		d.yamlError(err)
		return nil, false
	}
	var doc yaml.Node
	if err := loader.Load(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.fail(nil, "", "the configuration is empty", "define at least one cluster under \"clusters\"")
		} else {
			d.yamlError(err)
		}
		return nil, false
	}
	for {
		var next yaml.Node
		err := loader.Load(&next)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			d.yamlError(err)
			return nil, false
		}
		if len(next.Content) == 1 && isNull(next.Content[0]) && next.Content[0].Value == "" {
			continue // an empty document after a trailing "---"
		}
		d.fail(&next, "", "only one YAML document is allowed", `remove the "---" separator and everything after it, or merge the documents`)
		return nil, false
	}
	if len(doc.Content) != 1 || isNull(doc.Content[0]) {
		d.fail(nil, "", "the configuration is empty", "define at least one cluster under \"clusters\"")
		return nil, false
	}
	return resolve(doc.Content[0]), true
}

// yamlError records a YAML syntax error.
func (d *decoder) yamlError(err error) {
	var le *yaml.LoadError
	if !errors.As(err, &le) {
		d.fail(nil, "", "invalid YAML: "+err.Error(), "")
		return
	}
	msg := "invalid YAML: " + le.Message
	if le.ContextMsg != "" && le.ContextMark.Line > 0 && le.ContextMark != le.Mark {
		msg += fmt.Sprintf(" %s that starts at line %d, column %d", le.ContextMsg, le.ContextMark.Line, le.ContextMark.Column)
	}
	var hint string
	switch m := le.Message; {
	case strings.Contains(m, "tab") || d.tabIndented(le.Mark.Line):
		hint = "indent with spaces; YAML does not allow tabs for indentation"
	case strings.Contains(m, "unknown escape character"):
		hint = `inside double quotes a backslash starts an escape: write "\\." for a regular expression's \., or use single quotes`
	case strings.Contains(m, "mapping values are not allowed"):
		hint = `put values that contain ": " in quotes, or check the indentation`
	case strings.Contains(m, "did not find expected key"), strings.Contains(m, "did not find expected '-' indicator"):
		hint = "check the indentation"
	case strings.Contains(m, "did not find expected ',' or ']'"):
		hint = `close the list with "]"`
	case strings.Contains(m, "did not find expected ',' or '}'"):
		hint = `close the mapping with "}"`
	case strings.Contains(m, "unknown anchor"):
		hint = "define the anchor (&name) before referring to it (*name)"
	}
	e := &Error{File: d.file, Line: le.Mark.Line, Column: le.Mark.Column, Msg: msg, Hint: hint}
	if e.Line <= 0 {
		e.Line, e.Column = 0, 0
	}
	d.errs = append(d.errs, e)
}

// tabIndented reports whether line (1-based) starts with whitespace that
// contains a tab.
func (d *decoder) tabIndented(line int) bool {
	if line < 1 {
		return false
	}
	lines := bytes.SplitN(d.data, []byte("\n"), line+1)
	if len(lines) < line {
		return false
	}
	l := lines[line-1]
	indent := l[:len(l)-len(bytes.TrimLeft(l, " \t"))]
	return bytes.IndexByte(indent, '\t') >= 0
}

// resolve follows aliases to the node they refer to.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

// describe names the kind of a node for "expected X, got Y" messages.
func describe(n *yaml.Node) string {
	switch {
	case n == nil:
		return "nothing"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.Kind == yaml.AliasNode:
		return "an alias"
	case n.Kind != yaml.ScalarNode:
		return "a document"
	}
	switch n.Tag {
	case "!!null":
		return "nothing"
	case "!!bool":
		return "a boolean"
	case "!!int", "!!float":
		return "a number"
	}
	return "a string"
}

// childPath appends a mapping key to a field path.
func childPath(path, key string) string {
	if !simpleKeyRE.MatchString(key) {
		return path + "[" + strconv.Quote(key) + "]"
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

// pairs returns the entries of a mapping in file order, reporting
// duplicate and non-string keys. An empty value counts as an empty mapping.
func (d *decoder) pairs(e entry, want string) ([]entry, bool) {
	if isNull(e.val) {
		return nil, true
	}
	if e.val.Kind != yaml.MappingNode {
		d.fail(e.pos(), e.path, fmt.Sprintf("expected %s, got %s", want, describe(e.val)), "")
		return nil, false
	}
	var out []entry
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(e.val.Content); i += 2 {
		k, v := resolve(e.val.Content[i]), resolve(e.val.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			d.fail(k, e.path, fmt.Sprintf("expected a string key, got %s", describe(k)), "")
			continue
		}
		if k.Tag == "!!merge" {
			d.fail(k, e.path, "YAML merge keys (<<) are not supported", "write the settings out, or use an alias (*name) for a whole value")
			d.hush(e.path)
			continue
		}
		path := childPath(e.path, k.Value)
		if first, dup := seen[k.Value]; dup {
			d.fail(k, path, "duplicate key", fmt.Sprintf("first defined on line %d; YAML would silently keep only one", first.Line))
			continue
		}
		seen[k.Value] = k
		out = append(out, entry{key: k, val: v, path: path})
	}
	return out, true
}

// fields returns the entries of a mapping by key, reporting unknown keys
// along with the closest valid key.
func (d *decoder) fields(e entry, known []string, what string) (map[string]entry, bool) {
	ps, ok := d.pairs(e, "a mapping of settings for "+what)
	if !ok {
		return nil, false
	}
	out := make(map[string]entry, len(ps))
	for _, p := range ps {
		if !slices.Contains(known, p.key.Value) {
			d.unknownField(e, p, known)
			continue
		}
		out[p.key.Value] = p
	}
	return out, true
}

func (d *decoder) unknownField(parent, p entry, known []string) {
	key := p.key.Value
	hint := ""
	s := suggest(key, known)
	if s == "" {
		s = prefixMatch(key, known)
	}
	if s != "" {
		hint = fmt.Sprintf("did you mean %q?", s)
		d.hush(childPath(parent.path, s))
	} else {
		sorted := slices.Clone(known)
		slices.Sort(sorted)
		hint = "valid keys: " + strings.Join(sorted, ", ")
	}
	if strings.Contains(key, "${") {
		hint += "; environment variables are expanded in values only, not in keys"
	}
	d.fail(p.key, p.path, "unknown field", hint)
}

// prefixMatch returns the valid key that key starts with, as in
// "bootstrap_servers" for "bootstrap".
func prefixMatch(key string, known []string) string {
	best := ""
	for _, k := range known {
		if len(k) >= 3 && len(k) > len(best) && strings.HasPrefix(strings.ToLower(key), k) {
			best = k
		}
	}
	return best
}

// list returns the items of a sequence. An empty value is an empty list.
func (d *decoder) list(e entry, want string) ([]entry, bool) {
	if isNull(e.val) {
		return nil, true
	}
	if e.val.Kind != yaml.SequenceNode {
		d.fail(e.pos(), e.path, fmt.Sprintf("expected %s, got %s", want, describe(e.val)), "")
		return nil, false
	}
	out := make([]entry, len(e.val.Content))
	for i, n := range e.val.Content {
		out[i] = entry{val: resolve(n), path: fmt.Sprintf("%s[%d]", e.path, i)}
	}
	return out, true
}

// scalar is a string value after ${VAR} expansion.
type scalar struct {
	value string
	// vars lists the environment variables the value came from.
	vars []string
}

// emptyHint explains an empty value that came from environment variables.
func (s scalar) emptyHint() string {
	switch len(s.vars) {
	case 0:
		return ""
	case 1:
		return "environment variable " + s.vars[0] + " is set but empty"
	}
	return "environment variables " + strings.Join(s.vars, ", ") + " are set but empty"
}

// str returns the expanded value of a scalar. An empty (null) value is "".
// For secret fields, no error message shows the value.
func (d *decoder) str(e entry, secret bool) (scalar, bool) {
	if isNull(e.val) {
		return scalar{}, true
	}
	if e.val.Kind != yaml.ScalarNode {
		d.fail(e.pos(), e.path, "expected a string, got "+describe(e.val), "")
		return scalar{}, false
	}
	x := expand(e.val.Value, d.lookup)
	ok := true
	for _, name := range x.unset {
		d.fail(e.val, e.path, "environment variable "+name+" is not set", "export it, or write $${"+name+"} for a literal")
		ok = false
	}
	if x.malformed != "" {
		msg := "malformed variable reference"
		if !secret {
			msg += " " + quote(x.malformed)
		}
		d.fail(e.val, e.path, msg, `write ${NAME}, where NAME is letters, digits and "_", or $${ for a literal "${"`)
		ok = false
	}
	return scalar{value: x.value, vars: x.vars}, ok
}

// required returns the non-empty value of a required string field. parent
// is the mapping the field belongs to.
func (d *decoder) required(parent entry, f map[string]entry, key string, secret bool, hint string) (string, *yaml.Node, bool) {
	e, ok := f[key]
	if !ok {
		d.missing(parent, key, hint)
		return "", nil, false
	}
	s, ok := d.str(e, secret)
	if !ok {
		return "", nil, false
	}
	if s.value == "" {
		h := s.emptyHint()
		if h == "" {
			h = hint
		}
		d.fail(e.pos(), e.path, "must not be empty", h)
		return "", nil, false
	}
	return s.value, e.val, true
}

// optional returns the value of an optional string field, or def when it is
// absent or empty.
func (d *decoder) optional(f map[string]entry, key string, secret bool, def string) (string, *yaml.Node, bool) {
	e, ok := f[key]
	if !ok {
		return def, nil, true
	}
	s, ok := d.str(e, secret)
	if !ok {
		return def, nil, false
	}
	if s.value == "" {
		return def, nil, true
	}
	return s.value, e.val, true
}

// boolean returns the value of an optional true/false field.
func (d *decoder) boolean(f map[string]entry, key string, def bool) bool {
	v, n, ok := d.optional(f, key, false, "")
	if !ok || n == nil {
		return def
	}
	switch strings.ToLower(v) {
	case "true":
		return true
	case "false":
		return false
	}
	hint := ""
	switch strings.ToLower(v) {
	case "yes", "no", "on", "off", "y", "n", "1", "0":
		hint = "only true and false are booleans in YAML 1.2"
	}
	d.fail(n, f[key].path, "expected true or false, got "+quote(v), hint)
	return def
}

// enum returns the canonical form of an optional field that takes one of
// allowed (compared case-insensitively), or def when it is absent or empty.
// duration returns the value of an optional duration field ("100ms", "10s",
// "1m"), which must lie within [lo, hi].
func (d *decoder) duration(f map[string]entry, key string, def, lo, hi time.Duration) time.Duration {
	v, n, ok := d.optional(f, key, false, "")
	if !ok || n == nil {
		return def
	}
	dur, err := time.ParseDuration(v)
	switch {
	case err != nil:
		d.fail(n, f[key].path, "invalid duration "+quote(v), "write a number with a unit, e.g. 100ms, 10s or 1m")
	case dur < lo || dur > hi:
		d.fail(n, f[key].path, fmt.Sprintf("%s is out of range", dur), fmt.Sprintf("use a duration from %s to %s", lo, hi))
	default:
		return dur
	}
	return def
}

func (d *decoder) enum(f map[string]entry, key string, allowed []string, def string) string {
	v, n, ok := d.optional(f, key, false, "")
	if !ok {
		return def
	}
	if n == nil {
		return def
	}
	for _, a := range allowed {
		if strings.EqualFold(v, a) {
			return a
		}
	}
	d.fail(n, f[key].path, "unknown value "+quote(v), enumHint(v, allowed))
	return def
}

func enumHint(v string, allowed []string) string {
	if s := suggest(v, allowed); s != "" {
		return fmt.Sprintf("did you mean %q?", s)
	}
	return "allowed values: " + strings.Join(allowed, ", ")
}

// site decodes the top-level site. ok is false when it is invalid.
func (d *decoder) site(e entry) (site string, ok bool) {
	s, ok := d.str(e, false)
	if !ok || s.value == "" {
		return "", ok
	}
	if !siteRE.MatchString(s.value) {
		d.fail(e.val, e.path, "invalid site name "+quote(s.value), "use 1 to 63 letters, digits, \".\", \"_\" and \"-\", starting with a letter or digit; the site becomes part of topic names")
		return "", false
	}
	return s.value, true
}

// cluster decodes one entry under "clusters".
func (d *decoder) cluster(e entry) *Cluster {
	cl := &Cluster{Name: e.key.Value, ClientID: DefaultClientID}
	if !nameRE.MatchString(cl.Name) {
		hint := nameHint
		if strings.Contains(cl.Name, "${") {
			hint += "; environment variables are expanded in values only, not in keys"
		}
		d.fail(e.key, e.path, "invalid cluster name "+quote(cl.Name), hint)
	}
	f, ok := d.fields(e, clusterKeys, "cluster "+quote(cl.Name))
	if !ok {
		return cl
	}
	if b, ok := f["bootstrap"]; !ok {
		d.missing(e, "bootstrap", `list the cluster's brokers as host:port, e.g. ["broker1:9092"]`)
	} else {
		cl.Bootstrap = d.bootstrap(b)
	}
	cl.ClientID, _, _ = d.optional(f, "client_id", false, DefaultClientID)
	if t, ok := f["tls"]; ok && !isNull(t.val) {
		cl.TLS = d.tls(t)
	}
	if s, ok := f["sasl"]; ok && !isNull(s.val) {
		cl.SASL = d.sasl(s)
	}
	return cl
}

// bootstrap decodes a list of broker addresses. An item (or the whole
// value, when it is a single string) may hold several addresses separated
// by commas, as Kafka's bootstrap.servers does; this lets one environment
// variable supply them all.
func (d *decoder) bootstrap(e entry) []string {
	var items []entry
	if e.val.Kind == yaml.ScalarNode && !isNull(e.val) {
		items = []entry{e}
	} else {
		var ok bool
		items, ok = d.list(e, "a list of host:port broker addresses")
		if !ok {
			return nil
		}
	}
	var out []string
	for _, it := range items {
		s, ok := d.str(it, false)
		if !ok {
			continue
		}
		if strings.TrimSpace(s.value) == "" {
			d.fail(it.pos(), it.path, "empty broker address", s.emptyHint())
			continue
		}
		for part := range strings.SplitSeq(s.value, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				d.fail(it.pos(), it.path, "empty broker address in "+quote(s.value), "separate addresses with single commas")
				continue
			}
			if msg, hint := checkHostPort(part, false); msg != "" {
				d.fail(it.pos(), it.path, msg, hint)
				continue
			}
			out = append(out, part)
		}
	}
	if len(out) == 0 && len(items) == 0 {
		d.fail(e.pos(), e.path, "no brokers listed", `list the cluster's brokers as host:port, e.g. ["broker1:9092"]`)
	}
	return out
}

// checkHostPort validates a host:port address. For a listen address
// (listen is true) the host may be empty and the port may be 0.
func checkHostPort(addr string, listen bool) (msg, hint string) {
	example, defaultPort := "broker.example.com:9092", "9092"
	if listen {
		example, defaultPort = "127.0.0.1:9644", "9644"
	}
	if i := strings.Index(addr, "://"); i >= 0 {
		return fmt.Sprintf("%s is not a host:port address", quote(addr)), fmt.Sprintf("remove the %q prefix", addr[:i+3])
	}
	host, port, ok := splitHostPort(addr)
	if !ok {
		if strings.Count(addr, ":") > 1 && !strings.HasPrefix(addr, "[") {
			return fmt.Sprintf("%s is not a host:port address", quote(addr)), "put an IPv6 address in brackets, e.g. \"[::1]:9092\""
		}
		if listen && isDigits(addr) {
			return fmt.Sprintf("%s is not a host:port address", quote(addr)), fmt.Sprintf("write \":%s\" to listen on all interfaces, or \"127.0.0.1:%s\"", addr, addr)
		}
		if !strings.Contains(addr, ":") {
			return fmt.Sprintf("%s has no port", quote(addr)), fmt.Sprintf("write host:port, e.g. %q", addr+":"+defaultPort)
		}
		return fmt.Sprintf("%s is not a host:port address", quote(addr)), fmt.Sprintf("e.g. %q", example)
	}
	if host == "" && !listen {
		return fmt.Sprintf("%s has no host", quote(addr)), fmt.Sprintf("e.g. %q", example)
	}
	if !validHost(host) {
		return fmt.Sprintf("invalid host %s in %s", quote(host), quote(addr)), fmt.Sprintf("e.g. %q", example)
	}
	if !isDigits(port) {
		return fmt.Sprintf("port %s in %s is not a number", quote(port), quote(addr)), ""
	}
	n, err := strconv.Atoi(port)
	lo := 1
	if listen {
		lo = 0
	}
	if err != nil || n < lo || n > 65535 {
		if listen {
			return fmt.Sprintf("port %s in %s is out of range", port, quote(addr)), "use 1-65535, or 0 for any free port"
		}
		return fmt.Sprintf("port %s in %s is out of range", port, quote(addr)), "use 1-65535"
	}
	return "", ""
}

// splitHostPort splits "host:port" or "[ipv6]:port".
func splitHostPort(addr string) (host, port string, ok bool) {
	if strings.HasPrefix(addr, "[") {
		end := strings.Index(addr, "]")
		if end < 0 || !strings.HasPrefix(addr[end+1:], ":") {
			return "", "", false
		}
		host, port = addr[1:end], addr[end+2:]
		if !strings.Contains(host, ":") || strings.ContainsAny(port, "[]") {
			return "", "", false
		}
		return host, port, true
	}
	i := strings.LastIndex(addr, ":")
	if i < 0 || strings.Contains(addr[:i], ":") {
		return "", "", false
	}
	return addr[:i], addr[i+1:], true
}

// validHost accepts host names and IP addresses (IPv6 without brackets,
// possibly with a zone).
func validHost(h string) bool {
	for _, r := range h {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		case r == '.', r == '-', r == '_', r == ':', r == '%':
		default:
			return false
		}
	}
	return true
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// tls decodes a cluster's tls block.
func (d *decoder) tls(e entry) *TLS {
	t := &TLS{Enabled: true}
	f, ok := d.fields(e, tlsKeys, "TLS")
	if !ok {
		return t
	}
	t.Enabled = d.boolean(f, "enabled", true)
	t.InsecureSkipVerify = d.boolean(f, "insecure_skip_verify", false)
	t.CAFile, _, _ = d.optional(f, "ca_file", false, "")
	t.CertFile, _, _ = d.optional(f, "cert_file", false, "")
	t.KeyFile, _, _ = d.optional(f, "key_file", false, "")
	t.ServerName, _, _ = d.optional(f, "server_name", false, "")
	_, hasCert := f["cert_file"]
	_, hasKey := f["key_file"]
	switch {
	case t.CertFile != "" && t.KeyFile == "" && !hasKey:
		d.missing(e, "key_file", "cert_file and key_file must be given together")
	case t.CertFile != "" && t.KeyFile == "":
		d.fail(f["key_file"].pos(), f["key_file"].path, "must not be empty", "cert_file and key_file must be given together")
	case t.KeyFile != "" && t.CertFile == "" && !hasCert:
		d.missing(e, "cert_file", "cert_file and key_file must be given together")
	case t.KeyFile != "" && t.CertFile == "":
		d.fail(f["cert_file"].pos(), f["cert_file"].path, "must not be empty", "cert_file and key_file must be given together")
	}
	return t
}

// sasl decodes a cluster's sasl block.
func (d *decoder) sasl(e entry) *SASL {
	s := &SASL{}
	f, ok := d.fields(e, saslKeys, "SASL")
	if !ok {
		return s
	}
	mech, n, ok := d.required(e, f, "mechanism", false, "use one of "+strings.Join(Mechanisms, ", "))
	if !ok {
		return s
	}
	for _, m := range Mechanisms {
		if strings.EqualFold(mech, m) {
			s.Mechanism = m
		}
	}
	if s.Mechanism == "" {
		d.fail(n, f["mechanism"].path, "unknown mechanism "+quote(mech), enumHint(strings.ToUpper(mech), Mechanisms))
		return s
	}

	oauthOnly := []string{"token_url", "client_id", "client_secret", "client_secret_file", "scope"}
	passwordOnly := []string{"username", "password", "password_file"}
	notFor := passwordOnly
	if s.Mechanism != MechanismOAuthBearer {
		notFor = oauthOnly
	}
	for _, key := range notFor {
		if p, ok := f[key]; ok {
			hint := "it is only used with mechanism OAUTHBEARER"
			if s.Mechanism == MechanismOAuthBearer {
				hint = "OAUTHBEARER authenticates with token_url, client_id and client_secret"
			}
			d.fail(p.key, p.path, "not used with mechanism "+s.Mechanism, hint)
		}
	}

	if s.Mechanism == MechanismOAuthBearer {
		var tokenURL string
		if tokenURL, n, ok = d.required(e, f, "token_url", false, "mechanism OAUTHBEARER needs the OAuth 2 token endpoint, e.g. \"https://login.example.com/oauth2/token\""); ok {
			if msg, hint := checkTokenURL(tokenURL); msg != "" {
				d.fail(n, f["token_url"].path, msg, hint)
			} else {
				s.TokenURL = tokenURL
			}
		}
		s.ClientID, _, _ = d.required(e, f, "client_id", false, "mechanism OAUTHBEARER needs the OAuth 2 client ID")
		s.ClientSecret, _, _ = d.optional(f, "client_secret", true, "")
		s.ClientSecretFile, _, _ = d.optional(f, "client_secret_file", false, "")
		d.exclusive(f, "client_secret", "client_secret_file")
		s.Scope, _, _ = d.optional(f, "scope", false, "")
		return s
	}

	s.Username, _, _ = d.required(e, f, "username", false, "mechanism "+s.Mechanism+" needs a username")
	_, hasPW := f["password"]
	_, hasPF := f["password_file"]
	switch {
	case hasPW && hasPF:
		d.exclusive(f, "password", "password_file")
	case hasPF:
		s.PasswordFile, _, _ = d.required(e, f, "password_file", false, "")
	case hasPW:
		s.Password, _, _ = d.required(e, f, "password", true, "")
	default:
		d.missing(e, "password", "mechanism "+s.Mechanism+" needs password or password_file")
	}
	return s
}

// exclusive reports when both of two mutually exclusive keys are set, at
// the one that comes later in the file.
func (d *decoder) exclusive(f map[string]entry, a, b string) {
	ea, okA := f[a]
	eb, okB := f[b]
	if !okA || !okB {
		return
	}
	if eb.key.Line < ea.key.Line || (eb.key.Line == ea.key.Line && eb.key.Column < ea.key.Column) {
		ea, eb = eb, ea
		a, b = b, a
	}
	d.fail(eb.key, eb.path, "conflicts with "+a, "set exactly one of "+a+" and "+b)
}

// checkTokenURL validates an OAuth 2 token endpoint.
func checkTokenURL(s string) (msg, hint string) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "invalid URL " + quote(s), "use an absolute http or https URL, e.g. \"https://login.example.com/oauth2/token\""
	}
	return "", ""
}

// linkChecker holds what validating a link needs to know about the rest of
// the file.
type linkChecker struct {
	// clustersOK is false when "clusters" itself is unusable, so that
	// cluster references are not checked.
	clustersOK bool
	clusters   []string
	siteSet    bool
	// names maps each link name seen so far to its line.
	names map[string]int
}

// link decodes one item of "links".
func (d *decoder) link(e entry, lc *linkChecker) *Link {
	l := &Link{Rename: DefaultRename, Start: StartEarliest, Delivery: DeliveryExactlyOnce, OnError: OnErrorStop, CheckpointTopic: DefaultCheckpointTopic}
	if isNull(e.val) {
		d.fail(e.val, e.path, "empty link", "a link needs name, from, to and topics")
		return nil
	}
	f, ok := d.fields(e, linkKeys, "a link")
	if !ok {
		return nil
	}
	if name, n, ok := d.required(e, f, "name", false, "give the link a unique name, e.g. telemetry-up"); ok {
		switch first, dup := lc.names[name]; {
		case !nameRE.MatchString(name):
			d.fail(n, f["name"].path, "invalid link name "+quote(name), nameHint)
		case dup:
			d.fail(n, f["name"].path, "duplicate link name "+quote(name), fmt.Sprintf("first used on line %d; link names must be unique", first))
		default:
			lc.names[name] = n.Line
		}
		l.Name = name
	}
	from, fromNode, fromOK := d.required(e, f, "from", false, "name the source cluster"+clusterChoice(lc.clusters))
	if fromOK && d.clusterRef(lc, f["from"].path, fromNode, from) {
		l.From = from
	}
	to, toNode, toOK := d.required(e, f, "to", false, "name the destination cluster"+clusterChoice(lc.clusters))
	if toOK && d.clusterRef(lc, f["to"].path, toNode, to) {
		l.To = to
		if fromOK && from == to {
			d.fail(toNode, f["to"].path, quote(to)+" is also the source cluster", "a link must connect two different clusters")
		}
	}
	if t, ok := f["topics"]; !ok {
		d.missing(e, "topics", `select topics to replicate, e.g. topics: {include: ["sensors\\..*"]}`)
	} else {
		l.Topics = d.topics(t)
	}
	if r, n, ok := d.optional(f, "rename", false, DefaultRename); ok && n != nil {
		if usesSite := d.rename(f["rename"].path, n, r); usesSite && !lc.siteSet {
			d.fail(n, f["rename"].path, "{site} is used but the top-level site is not set", "set site, e.g. site: plant-berlin, or remove {site}")
		}
		l.Rename = r
	}
	l.Start = StartPosition(d.enum(f, "start", []string{string(StartEarliest), string(StartLatest)}, string(StartEarliest)))
	l.Delivery = Delivery(d.enum(f, "delivery", []string{string(DeliveryExactlyOnce), string(DeliveryAtLeastOnce)}, string(DeliveryExactlyOnce)))
	l.OnError = OnError(d.enum(f, "on_error", []string{string(OnErrorStop), string(OnErrorSkip)}, string(OnErrorStop)))
	l.Profile = Profile(d.enum(f, "profile", []string{string(ProfileLAN), string(ProfileWAN), string(ProfileSatellite)}, string(ProfileLAN)))
	l.Compression = d.enum(f, "compression", Compressions, "")
	if v, n, ok := d.optional(f, "bandwidth", false, ""); ok && n != nil {
		if r, err := ParseRate(v); err != nil {
			d.fail(n, f["bandwidth"].path, err.Error(), "write a rate such as 2Mbit/s, 512kbit/s or 1MB/s")
		} else {
			l.Bandwidth = r
		}
	}
	if e, ok := f["bandwidth_schedule"]; ok {
		l.BandwidthSchedule = d.schedule(e)
	}
	if e, ok := f["priorities"]; ok {
		l.Priorities = d.priorities(e)
	}
	if e, ok := f["tuning"]; ok {
		l.Tuning = d.tuning(e)
	}
	l.CommitInterval = d.duration(f, "commit_interval", DefaultCommitInterval, time.Millisecond, time.Minute)
	l.DiscoveryInterval = d.duration(f, "discovery_interval", DefaultDiscoveryInterval, 100*time.Millisecond, time.Hour)
	if t, n, ok := d.optional(f, "checkpoint_topic", false, DefaultCheckpointTopic); ok && n != nil {
		if !topicNameRE.MatchString(t) || t == "." || t == ".." {
			d.fail(n, f["checkpoint_topic"].path, "invalid topic name "+quote(t), "Kafka topic names use letters, digits, '.', '_' and '-', at most 249 characters")
		} else {
			l.CheckpointTopic = t
		}
	}
	return l
}

var topicNameRE = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

func clusterChoice(clusters []string) string {
	if len(clusters) == 0 {
		return ""
	}
	return ": " + quoteList(clusters)
}

// clusterRef checks that name refers to a defined cluster.
func (d *decoder) clusterRef(lc *linkChecker, path string, n *yaml.Node, name string) bool {
	if !lc.clustersOK || slices.Contains(lc.clusters, name) {
		return true
	}
	hint := "no clusters are defined"
	if s := suggest(name, lc.clusters); s != "" {
		hint = fmt.Sprintf("did you mean %q?", s)
	} else if len(lc.clusters) > 0 {
		hint = "defined clusters: " + strings.Join(lc.clusters, ", ")
	}
	d.fail(n, path, "unknown cluster "+quote(name), hint)
	return false
}

// topics decodes a link's topic selection.
func (d *decoder) topics(e entry) Topics {
	var t Topics
	f, ok := d.fields(e, topicsKeys, "topic selection")
	if !ok {
		return t
	}
	inc, ok := f["include"]
	if !ok {
		d.missing(e, "include", `list regular expressions of topics to replicate, e.g. include: ["sensors\\..*"]`)
	} else {
		t.Include, t.IncludeRE = d.patterns(inc)
		if len(t.Include) == 0 && (isNull(inc.val) || (inc.val.Kind == yaml.SequenceNode && len(inc.val.Content) == 0)) {
			d.fail(inc.pos(), inc.path, "no patterns listed", `list regular expressions of topics to replicate, e.g. include: ["sensors\\..*"]; ".*" selects every topic`)
		}
	}
	if exc, ok := f["exclude"]; ok {
		t.Exclude, t.ExcludeRE = d.patterns(exc)
	}
	return t
}

// patterns decodes a list of topic regular expressions, anchoring each to
// match whole topic names.
func (d *decoder) patterns(e entry) ([]string, []*regexp.Regexp) {
	items, ok := d.list(e, "a list of regular expressions")
	if !ok {
		return nil, nil
	}
	var pats []string
	var res []*regexp.Regexp
	for _, it := range items {
		s, ok := d.str(it, false)
		if !ok {
			continue
		}
		if s.value == "" {
			d.fail(it.pos(), it.path, "empty pattern", s.emptyHint())
			continue
		}
		re, msg, hint := compilePattern(s.value)
		if re == nil {
			d.fail(it.pos(), it.path, msg, hint)
			continue
		}
		pats = append(pats, s.value)
		res = append(res, re)
	}
	return pats, res
}

// rename validates a rename template and reports whether it uses {site}.
func (d *decoder) rename(path string, n *yaml.Node, tmpl string) (usesSite bool) {
	hasTopic := false
	for i := 0; i < len(tmpl); {
		c := tmpl[i]
		switch {
		case c == '{':
			end := strings.IndexByte(tmpl[i:], '}')
			if end < 0 {
				d.fail(n, path, "unclosed \"{\" in "+quote(tmpl), "placeholders are {topic} and {site}")
				return usesSite
			}
			ph := tmpl[i+1 : i+end]
			switch ph {
			case "topic":
				hasTopic = true
			case "site":
				usesSite = true
			default:
				hint := "the placeholders are {topic} and {site}"
				if s := suggest(ph, []string{"topic", "site"}); s != "" {
					hint = fmt.Sprintf("did you mean \"{%s}\"?", s)
				}
				d.fail(n, path, "unknown placeholder "+quote("{"+ph+"}")+" in "+quote(tmpl), hint)
				return usesSite
			}
			i += end + 1
		case isTopicChar(c):
			i++
		default:
			r := []rune(tmpl[i:])[0]
			d.fail(n, path, fmt.Sprintf("%s contains %s, which cannot appear in a topic name", quote(tmpl), quote(string(r))), `outside placeholders use only letters, digits, ".", "_" and "-"`)
			return usesSite
		}
	}
	if !hasTopic {
		d.fail(n, path, quote(tmpl)+" does not contain {topic}", `without it every topic is written to the same destination topic; e.g. "{site}.{topic}"`)
	}
	return usesSite
}

func isTopicChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-'
}

// http decodes the http block.
func (d *decoder) http(e entry) HTTP {
	h := HTTP{Listen: DefaultHTTPListen}
	f, ok := d.fields(e, httpKeys, "the HTTP server")
	if !ok {
		return h
	}
	if listen, n, ok := d.optional(f, "listen", false, DefaultHTTPListen); ok && n != nil {
		if msg, hint := checkHostPort(listen, true); msg != "" {
			d.fail(n, f["listen"].path, msg, hint)
		} else {
			h.Listen = listen
		}
	}
	if t, ok := f["tls"]; ok && !isNull(t.val) {
		h.TLS = d.httpTLS(t)
	}
	_, hasToken := f["token"]
	_, hasFile := f["token_file"]
	switch {
	case hasToken && hasFile:
		d.exclusive(f, "token", "token_file")
	case hasToken:
		h.Token, _, _ = d.required(e, f, "token", true, `set a long random token, e.g. token: "${EDGELINK_HTTP_TOKEN}", or leave token out to serve without one`)
	case hasFile:
		h.TokenFile, _, _ = d.required(e, f, "token_file", false, "the path of a file holding the token, or leave token_file out to serve without one")
	}
	h.Pprof = d.boolean(f, "pprof", false)
	return h
}

// httpTLS decodes the http.tls block: a certificate and its key.
func (d *decoder) httpTLS(e entry) *HTTPTLS {
	t := &HTTPTLS{}
	f, ok := d.fields(e, httpTLSKeys, "the HTTP server's TLS")
	if !ok {
		return nil
	}
	hint := "HTTPS needs both cert_file and key_file (PEM)"
	t.CertFile, _, _ = d.required(e, f, "cert_file", false, hint)
	t.KeyFile, _, _ = d.required(e, f, "key_file", false, hint)
	return t
}

// compilePattern compiles a topic pattern anchored to match whole names. On
// failure it returns a message and hint instead.
func compilePattern(p string) (re *regexp.Regexp, msg, hint string) {
	_, err := regexp.Compile(p)
	if err == nil {
		re, err = regexp.Compile(`^(?:` + p + `)$`)
		if err == nil {
			return re, "", ""
		}
	}
	msg = "invalid regular expression " + quote(p)
	var se *syntax.Error
	if !errors.As(err, &se) {
		return nil, msg + ": " + err.Error(), ""
	}
	msg += ": " + se.Code.String()
	if se.Expr != p && se.Expr != "" {
		msg += ": `" + truncate(se.Expr) + "`"
	}
	switch {
	case se.Code == syntax.ErrInvalidPerlOp && (strings.HasPrefix(se.Expr, "(?=") || strings.HasPrefix(se.Expr, "(?!") || strings.HasPrefix(se.Expr, "(?<")):
		hint = "Go regular expressions have no lookaround; list the topics to leave out under exclude"
	case se.Code == syntax.ErrMissingRepeatArgument && (strings.HasPrefix(p, "*") || strings.HasPrefix(p, "?") || strings.HasPrefix(p, "+")):
		hint = `this looks like a glob; in a regular expression ".*" matches anything, e.g. ".*\\.debug"`
	case se.Code == syntax.ErrInvalidRepeatSize:
		hint = "repeat counts go up to 1000"
	case se.Code == syntax.ErrNestingDepth || se.Code == syntax.ErrLarge:
		hint = "simplify the pattern"
	default:
		hint = "check the pattern's syntax; backslashes must be doubled inside double quotes"
	}
	return nil, msg, hint
}

// priorities decodes a link's topic priorities.
func (d *decoder) priorities(e entry) []Priority {
	items, ok := d.list(e, `a list of priorities, e.g. [{match: "alerts", priority: 10}]`)
	if !ok {
		return nil
	}
	var out []Priority
	for _, it := range items {
		f, ok := d.fields(it, priorityKeys, "a priority")
		if !ok {
			continue
		}
		p := Priority{Weight: DefaultPriority}
		good := true
		if m, n, ok := d.required(it, f, "match", false, `a regular expression of topics, e.g. match: "alerts.*"`); ok {
			re, msg, hint := compilePattern(m)
			if re == nil {
				d.fail(n, f["match"].path, msg, hint)
				good = false
			}
			p.Match, p.MatchRE = m, re
		} else {
			good = false
		}
		if v, n, ok := d.required(it, f, "priority", false, fmt.Sprintf("a weight from 1 to %d; topics no priority matches weigh %d", MaxPriority, DefaultPriority)); ok {
			w, err := strconv.Atoi(v)
			if err != nil || w < 1 || w > MaxPriority {
				d.fail(n, f["priority"].path, "invalid priority "+quote(v), fmt.Sprintf("a whole number from 1 to %d; higher means a larger share of the link", MaxPriority))
				good = false
			}
			p.Weight = w
		} else {
			good = false
		}
		if good {
			out = append(out, p)
		}
	}
	return out
}

// weekdays are the day names a bandwidth window accepts.
var weekdays = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// schedule decodes a link's bandwidth schedule.
func (d *decoder) schedule(e entry) []BandwidthWindow {
	items, ok := d.list(e, `a list of windows, e.g. [{from: "08:00", to: "18:00", rate: 512kbit/s}]`)
	if !ok {
		return nil
	}
	var out []BandwidthWindow
	for _, it := range items {
		f, ok := d.fields(it, windowKeys, "a bandwidth window")
		if !ok {
			continue
		}
		var w BandwidthWindow
		good := true
		for _, key := range []string{"from", "to"} {
			v, n, ok := d.required(it, f, key, false, `a time of day such as "08:00"`)
			if !ok {
				good = false
				continue
			}
			m, ok := clock(v)
			if !ok {
				d.fail(n, f[key].path, "invalid time of day "+quote(v), `write hours and minutes, "00:00" to "24:00", in quotes`)
				good = false
				continue
			}
			if key == "from" {
				w.From = m
			} else {
				w.To = m
			}
		}
		if good && w.From == w.To {
			d.fail(f["to"].val, f["to"].path, "the window is empty", "from and to must differ; a window with to before from runs past midnight")
			good = false
		}
		if v, n, ok := d.required(it, f, "rate", false, "a rate such as 512kbit/s, or unlimited"); ok {
			if strings.EqualFold(v, "unlimited") {
				w.Rate = 0
			} else if r, err := ParseRate(v); err != nil {
				d.fail(n, f["rate"].path, err.Error(), "write a rate such as 2Mbit/s, 512kbit/s or 1MB/s, or unlimited")
				good = false
			} else {
				w.Rate = r
			}
		} else {
			good = false
		}
		if days, ok := f["days"]; ok {
			ds, _ := d.list(days, "a list of days, e.g. [mon, tue, wed, thu, fri]")
			for _, de := range ds {
				v, ok := d.str(de, false)
				if !ok {
					good = false
					continue
				}
				i := slices.Index(weekdays, strings.ToLower(v.value))
				if i < 0 {
					d.fail(de.pos(), de.path, "unknown day "+quote(v.value), enumHint(strings.ToLower(v.value), weekdays))
					good = false
					continue
				}
				w.Days = append(w.Days, time.Weekday(i))
			}
		}
		if good {
			out = append(out, w)
		}
	}
	return out
}

// clock parses "HH:MM" (00:00 to 24:00) into minutes after midnight.
func clock(v string) (int, bool) {
	h, m, ok := strings.Cut(v, ":")
	if !ok || len(h) < 1 || len(h) > 2 || len(m) != 2 || !isDigits(h) || !isDigits(m) {
		return 0, false
	}
	hh, _ := strconv.Atoi(h)
	mm, _ := strconv.Atoi(m)
	if mm > 59 || hh > 24 || (hh == 24 && mm != 0) {
		return 0, false
	}
	return hh*60 + mm, true
}

// tuning decodes a link's overrides of its profile.
func (d *decoder) tuning(e entry) Tuning {
	var t Tuning
	f, ok := d.fields(e, tuningKeys, "tuning")
	if !ok {
		return t
	}
	t.DialTimeout = d.duration(f, "dial_timeout", 0, 100*time.Millisecond, 5*time.Minute)
	t.RequestTimeout = d.duration(f, "request_timeout", 0, 100*time.Millisecond, 5*time.Minute)
	t.ProduceTimeout = d.duration(f, "produce_timeout", 0, 100*time.Millisecond, 5*time.Minute)
	t.FetchMaxWait = d.duration(f, "fetch_max_wait", 0, 10*time.Millisecond, 30*time.Second)
	t.TransactionTime = d.duration(f, "transaction_time", 0, 10*time.Millisecond, 30*time.Second)
	if v, n, ok := d.optional(f, "batch_bytes", false, ""); ok && n != nil {
		b, err := ParseSize(v)
		switch {
		case err != nil:
			d.fail(n, f["batch_bytes"].path, err.Error(), "write a size such as 256KiB or 1MiB")
		case b < 1<<10 || b > 64<<20:
			d.fail(n, f["batch_bytes"].path, "batch_bytes is out of range", "use a size from 1KiB to 64MiB; the broker's message.max.bytes must allow it")
		default:
			t.BatchBytes = int(b)
		}
	}
	return t
}
