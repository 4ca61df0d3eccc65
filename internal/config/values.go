package config

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"time"

	"cel.dev/cel-go/cel"
	"go.yaml.in/yaml/v4"

	"github.com/edgelink/edgelink/internal/transform"
)

// The kinds of value a key can take. Each parses a value, holds its default
// and constraints, writes it back out and redacts it; the schema (schema.go)
// binds one to each key.

// text is a string. An empty value keeps the default, unless the key is
// required or nonEmpty is set. check, when set, validates a non-empty value.
type text struct {
	p        *string
	def      string
	nonEmpty bool
	check    func(v string) (msg, hint string)
}

func (t *text) reset() { *t.p = t.def }

func (t *text) decode(d *decoder, e entry, k keyInfo) bool {
	v, ok := d.text(e, k, t.nonEmpty)
	if !ok || v == "" {
		return ok
	}
	if t.check != nil {
		if msg, hint := t.check(v); msg != "" {
			d.fail(e.val, e.path, msg, hint)
			return false
		}
	}
	*t.p = v
	return true
}

func (t *text) encode() *yaml.Node { return strNode(*t.p) }

func (t *text) redact(secret bool) {
	if secret && *t.p != "" {
		*t.p = redacted
	}
}

// text returns the expanded value of a string. An empty value is an error
// when the key is required or nonEmpty is set; otherwise it is returned as "".
func (d *decoder) text(e entry, k keyInfo, nonEmpty bool) (string, bool) {
	s, ok := d.str(e, k.secret)
	if !ok {
		return "", false
	}
	if s.value == "" && (k.required || nonEmpty) {
		hint := s.emptyHint()
		if hint == "" {
			hint = k.hint
		}
		d.fail(e.pos(), e.path, "must not be empty", hint)
		return "", false
	}
	return s.value, true
}

// scalarValue holds what the kinds of value that have nothing to copy or
// redact share.
type scalarValue struct{}

func (scalarValue) redact(bool) {}

// flag is true or false.
type flag struct {
	scalarValue
	p   *bool
	def bool
}

func (f *flag) reset() { *f.p = f.def }

func (f *flag) decode(d *decoder, e entry, k keyInfo) bool {
	v, ok := d.text(e, k, false)
	if !ok || v == "" {
		return ok
	}
	switch strings.ToLower(v) {
	case "true":
		*f.p = true
		return true
	case "false":
		*f.p = false
		return true
	}
	hint := ""
	switch strings.ToLower(v) {
	case "yes", "no", "on", "off", "y", "n", "1", "0":
		hint = "only true and false are booleans in YAML 1.2"
	}
	d.fail(e.val, e.path, "expected true or false, got "+quote(v), hint)
	return false
}

func (f *flag) encode() *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(*f.p)}
}

// enum is one of a list of words, compared case-insensitively and stored
// as listed.
type enum[S ~string] struct {
	scalarValue
	p      *S
	def    S
	values []S
}

func (v *enum[S]) reset() { *v.p = v.def }

func (v *enum[S]) decode(d *decoder, e entry, k keyInfo) bool {
	s, ok := d.text(e, k, false)
	if !ok || s == "" {
		return ok
	}
	allowed := make([]string, len(v.values))
	for i, a := range v.values {
		if strings.EqualFold(s, string(a)) {
			*v.p = a
			return true
		}
		allowed[i] = string(a)
	}
	d.fail(e.val, e.path, "unknown value "+quote(s), enumHint(s, allowed))
	return false
}

func (v *enum[S]) encode() *yaml.Node { return strNode(string(*v.p)) }

func enumHint(v string, allowed []string) string {
	if s := suggest(v, allowed); s != "" {
		return fmt.Sprintf("did you mean %q?", s)
	}
	return "allowed values: " + strings.Join(allowed, ", ")
}

// mechanism is a SASL mechanism, one of Mechanisms.
type mechanism struct {
	scalarValue
	p *string
}

func (m *mechanism) reset() { *m.p = "" }

func (m *mechanism) decode(d *decoder, e entry, k keyInfo) bool {
	v, ok := d.text(e, k, false)
	if !ok || v == "" {
		return ok
	}
	for _, mech := range Mechanisms {
		if strings.EqualFold(v, mech) {
			*m.p = mech
			return true
		}
	}
	d.fail(e.val, e.path, "unknown mechanism "+quote(v), enumHint(strings.ToUpper(v), Mechanisms))
	return false
}

func (m *mechanism) encode() *yaml.Node { return strNode(*m.p) }

// duration is a time.Duration such as "100ms", "10s" or "1m", from min to
// max.
type duration struct {
	scalarValue
	p             *time.Duration
	def, min, max time.Duration
}

func (t *duration) reset() { *t.p = t.def }

func (t *duration) decode(d *decoder, e entry, k keyInfo) bool {
	v, ok := d.text(e, k, false)
	if !ok || v == "" {
		return ok
	}
	dur, err := time.ParseDuration(v)
	switch {
	case err != nil:
		d.fail(e.val, e.path, "invalid duration "+quote(v), "write a number with a unit, e.g. 100ms, 10s or 1m")
	case dur < t.min || dur > t.max:
		d.fail(e.val, e.path, fmt.Sprintf("%s is out of range", dur), fmt.Sprintf("use a duration from %s to %s", t.min, t.max))
	default:
		*t.p = dur
		return true
	}
	return false
}

func (t *duration) encode() *yaml.Node {
	if *t.p == 0 {
		return nil
	}
	return strNode(t.p.String())
}

// rate is a rate in bytes per second, written as ParseRate reads it; 0
// (absent) means unlimited. With unlimited set, the word "unlimited" is a
// value too.
type rate struct {
	scalarValue
	p         *int64
	unlimited bool
}

func (r *rate) reset() { *r.p = 0 }

func (r *rate) decode(d *decoder, e entry, k keyInfo) bool {
	v, ok := d.text(e, k, false)
	if !ok || v == "" {
		return ok
	}
	if r.unlimited && strings.EqualFold(v, "unlimited") {
		*r.p = 0
		return true
	}
	n, err := ParseRate(v)
	if err != nil {
		hint := "write a rate such as 2Mbit/s, 512kbit/s or 1MB/s"
		if r.unlimited {
			hint += ", or unlimited"
		}
		d.fail(e.val, e.path, err.Error(), hint)
		return false
	}
	*r.p = n
	return true
}

func (r *rate) encode() *yaml.Node {
	switch {
	case *r.p > 0:
		return strNode(strconv.FormatInt(*r.p, 10) + "B/s")
	case r.unlimited:
		return strNode("unlimited")
	}
	return nil
}

// size is a number of bytes, written as ParseSize reads it, from min to
// max; 0 (absent) keeps the default. note follows the range in the hint.
type size = sizeOf[int]

// size64 is a size that may exceed what an int holds on 32-bit machines.
type size64 = sizeOf[int64]

type sizeOf[T int | int64] struct {
	scalarValue
	p        *T
	def      T
	min, max int64
	note     string
}

func (s *sizeOf[T]) reset() { *s.p = s.def }

func (s *sizeOf[T]) decode(d *decoder, e entry, k keyInfo) bool {
	v, ok := d.text(e, k, false)
	if !ok || v == "" {
		return ok
	}
	b, err := ParseSize(v)
	switch {
	case err != nil:
		d.fail(e.val, e.path, err.Error(), "write a size such as 256KiB or 1MiB")
	case b < s.min || b > s.max:
		d.fail(e.val, e.path, k.name+" is out of range", fmt.Sprintf("use a size from %s to %s; %s", formatSize(s.min), formatSize(s.max), s.note))
	default:
		*s.p = T(b)
		return true
	}
	return false
}

func (s *sizeOf[T]) encode() *yaml.Node {
	if *s.p == 0 || *s.p == s.def {
		return nil
	}
	return strNode(formatSize(int64(*s.p)))
}

// formatSize writes a size in the largest binary unit that divides it.
func formatSize(n int64) string {
	for _, u := range []struct {
		unit string
		size int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.unit
		}
	}
	return strconv.FormatInt(n, 10)
}

// integer is a whole number from min to max. note follows the range in the
// hint.
type integer struct {
	scalarValue
	p             *int
	def, min, max int
	note          string
}

func (n *integer) reset() { *n.p = n.def }

func (n *integer) decode(d *decoder, e entry, k keyInfo) bool {
	v, ok := d.text(e, k, false)
	if !ok || v == "" {
		return ok
	}
	i, err := strconv.Atoi(v)
	if err != nil || i < n.min || i > n.max {
		d.fail(e.val, e.path, "invalid "+k.name+" "+quote(v), fmt.Sprintf("a whole number from %d to %d; %s", n.min, n.max, n.note))
		return false
	}
	*n.p = i
	return true
}

func (n *integer) encode() *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(*n.p)}
}

// timeOfDay is "HH:MM", from "00:00" to "24:00", held as minutes after
// midnight.
type timeOfDay struct {
	scalarValue
	p *int
}

func (t *timeOfDay) reset() { *t.p = 0 }

func (t *timeOfDay) decode(d *decoder, e entry, k keyInfo) bool {
	v, ok := d.text(e, k, false)
	if !ok || v == "" {
		return ok
	}
	m, ok := clock(v)
	if !ok {
		d.fail(e.val, e.path, "invalid time of day "+quote(v), `write hours and minutes, "00:00" to "24:00", in quotes`)
		return false
	}
	*t.p = m
	return true
}

func (t *timeOfDay) encode() *yaml.Node {
	return strNode(fmt.Sprintf("%02d:%02d", *t.p/60, *t.p%60))
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

// weekdays are the day names a days list accepts.
var weekdays = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// days is a list of weekdays by their short names.
type days struct {
	p *[]time.Weekday
}

func (v *days) reset() { *v.p = nil }

func (v *days) decode(d *decoder, e entry, _ keyInfo) bool {
	items, ok := d.list(e, "a list of days, e.g. [mon, tue, wed, thu, fri]")
	for _, it := range items {
		s, sok := d.str(it, false)
		if !sok {
			ok = false
			continue
		}
		i := slices.Index(weekdays, strings.ToLower(s.value))
		if i < 0 {
			d.fail(it.pos(), it.path, "unknown day "+quote(s.value), enumHint(strings.ToLower(s.value), weekdays))
			ok = false
			continue
		}
		*v.p = append(*v.p, time.Weekday(i))
	}
	return ok
}

func (v *days) encode() *yaml.Node {
	names := make([]string, len(*v.p))
	for i, day := range *v.p {
		names[i] = weekdays[day]
	}
	return seqOf(names)
}

func (v *days) redact(bool) { *v.p = slices.Clone(*v.p) }

// patterns is a list of topic regular expressions, each anchored to match
// whole topic names. With nonEmpty set, an empty list is an error.
type patterns struct {
	p        *[]string
	re       *[]*regexp.Regexp
	nonEmpty bool
}

func (v *patterns) reset() { *v.p, *v.re = nil, nil }

func (v *patterns) decode(d *decoder, e entry, k keyInfo) bool {
	items, ok := d.list(e, "a list of regular expressions")
	if !ok {
		return false
	}
	for _, it := range items {
		s, sok := d.str(it, false)
		if !sok {
			ok = false
			continue
		}
		if s.value == "" {
			d.fail(it.pos(), it.path, "empty pattern", s.emptyHint())
			ok = false
			continue
		}
		re, msg, hint := compilePattern(s.value)
		if re == nil {
			d.fail(it.pos(), it.path, msg, hint)
			ok = false
			continue
		}
		*v.p = append(*v.p, s.value)
		*v.re = append(*v.re, re)
	}
	if v.nonEmpty && len(*v.p) == 0 && (isNull(e.val) || len(e.val.Content) == 0) {
		d.fail(e.pos(), e.path, "no patterns listed", k.hint+`; ".*" selects every topic`)
		return false
	}
	return ok
}

func (v *patterns) encode() *yaml.Node { return seqOf(*v.p) }

func (v *patterns) redact(bool) { *v.p, *v.re = slices.Clone(*v.p), slices.Clone(*v.re) }

// pattern is one topic regular expression, anchored to match whole topic
// names.
type pattern struct {
	scalarValue
	p  *string
	re **regexp.Regexp
}

func (v *pattern) reset() { *v.p, *v.re = "", nil }

func (v *pattern) decode(d *decoder, e entry, k keyInfo) bool {
	s, ok := d.text(e, k, false)
	if !ok || s == "" {
		return ok
	}
	re, msg, hint := compilePattern(s)
	if re == nil {
		d.fail(e.val, e.path, msg, hint)
		return false
	}
	*v.p, *v.re = s, re
	return true
}

func (v *pattern) encode() *yaml.Node { return strNode(*v.p) }

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

// brokers is a list of host:port broker addresses. An item (or the whole
// value, when it is a single string) may hold several addresses separated
// by commas, as Kafka's bootstrap.servers does; this lets one environment
// variable supply them all. An empty list is an error.
type brokers struct {
	p *[]string
}

func (v *brokers) reset() { *v.p = nil }

func (v *brokers) decode(d *decoder, e entry, k keyInfo) bool {
	var items []entry
	if e.val.Kind == yaml.ScalarNode && !isNull(e.val) {
		items = []entry{e}
	} else {
		var ok bool
		if items, ok = d.list(e, "a list of host:port broker addresses"); !ok {
			return false
		}
	}
	ok := true
	for _, it := range items {
		s, sok := d.str(it, false)
		if !sok {
			ok = false
			continue
		}
		if strings.TrimSpace(s.value) == "" {
			d.fail(it.pos(), it.path, "empty broker address", s.emptyHint())
			ok = false
			continue
		}
		for part := range strings.SplitSeq(s.value, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				d.fail(it.pos(), it.path, "empty broker address in "+quote(s.value), "separate addresses with single commas")
				ok = false
				continue
			}
			if msg, hint := checkHostPort(part, false); msg != "" {
				d.fail(it.pos(), it.path, msg, hint)
				ok = false
				continue
			}
			*v.p = append(*v.p, part)
		}
	}
	if len(*v.p) == 0 && len(items) == 0 {
		d.fail(e.pos(), e.path, "no brokers listed", k.hint)
		return false
	}
	return ok
}

func (v *brokers) encode() *yaml.Node { return seqOf(*v.p) }

func (v *brokers) redact(bool) { *v.p = slices.Clone(*v.p) }

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

// checkListen validates the address the HTTP server listens on.
func checkListen(addr string) (msg, hint string) { return checkHostPort(addr, true) }

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

// checkTokenURL validates an OAuth 2 token endpoint.
func checkTokenURL(s string) (msg, hint string) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "invalid URL " + quote(s), "use an absolute http or https URL, e.g. \"https://login.example.com/oauth2/token\""
	}
	return "", ""
}

var topicNameRE = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

// checkTopicName validates a Kafka topic name.
func checkTopicName(t string) (msg, hint string) {
	if !topicNameRE.MatchString(t) || t == "." || t == ".." {
		return "invalid topic name " + quote(t), "Kafka topic names use letters, digits, '.', '_' and '-', at most 249 characters"
	}
	return "", ""
}

var (
	siteRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
	nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
)

const nameHint = `use letters, digits, ".", "_" and "-", starting with a letter or digit`

// site is the name of this edge location, which rename templates may use.
type site struct {
	text
}

func (s *site) decode(d *decoder, e entry, k keyInfo) bool {
	ok := s.text.decode(d, e, k)
	// An invalid site was reported already; {site} is not reported again
	// as unset.
	d.refs.siteSet = !ok || *s.p != ""
	return ok
}

// checkSite validates a site name.
func checkSite(s string) (msg, hint string) {
	if !siteRE.MatchString(s) {
		return "invalid site name " + quote(s), "use 1 to 63 letters, digits, \".\", \"_\" and \"-\", starting with a letter or digit; the site becomes part of topic names"
	}
	return "", ""
}

// linkName is a link's name, unique among links.
type linkName struct {
	text
}

func (n *linkName) decode(d *decoder, e entry, k keyInfo) bool {
	if !n.text.decode(d, e, k) || *n.p == "" {
		return false
	}
	if first, dup := d.refs.links[*n.p]; dup {
		d.fail(e.val, e.path, "duplicate link name "+quote(*n.p), fmt.Sprintf("first used on line %d; link names must be unique", first))
		return false
	}
	d.refs.links[*n.p] = e.val.Line
	return true
}

// checkLinkName validates a link name.
func checkLinkName(name string) (msg, hint string) {
	if !nameRE.MatchString(name) {
		return "invalid link name " + quote(name), nameHint
	}
	return "", ""
}

// clusterRef is the name of a cluster defined under "clusters".
type clusterRef struct {
	text
}

func (c *clusterRef) hint(d *decoder, base string) string {
	if len(d.refs.clusters) == 0 {
		return base
	}
	return base + ": " + quoteList(d.refs.clusters)
}

func (c *clusterRef) decode(d *decoder, e entry, k keyInfo) bool {
	if !c.text.decode(d, e, k) || *c.p == "" {
		return false
	}
	name := *c.p
	if !d.refs.clustersOK || slices.Contains(d.refs.clusters, name) {
		return true
	}
	hint := "no clusters are defined"
	if s := suggest(name, d.refs.clusters); s != "" {
		hint = fmt.Sprintf("did you mean %q?", s)
	} else if len(d.refs.clusters) > 0 {
		hint = "defined clusters: " + strings.Join(d.refs.clusters, ", ")
	}
	d.fail(e.val, e.path, "unknown cluster "+quote(name), hint)
	*c.p = ""
	return false
}

// rename is a template for destination topic names, with the placeholders
// {topic} (required) and {site}.
type rename struct {
	text
}

func (r *rename) decode(d *decoder, e entry, k keyInfo) bool {
	v, ok := d.text(e, k, false)
	if !ok || v == "" {
		return ok
	}
	*r.p = v
	n := len(d.errs)
	if usesSite := d.rename(e.path, e.val, v); usesSite && !d.refs.siteSet {
		d.fail(e.val, e.path, "{site} is used but the top-level site is not set", "set site, e.g. site: plant-berlin, or remove {site}")
	}
	return len(d.errs) == n
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

// files is a list of file paths; an empty item is an error.
type files struct {
	p *[]string
	// want describes the list in "expected ..., got ..." messages.
	want string
}

func (v *files) reset() { *v.p = nil }

func (v *files) decode(d *decoder, e entry, _ keyInfo) bool {
	items, ok := d.list(e, v.want)
	if !ok {
		return false
	}
	for _, it := range items {
		s, sok := d.str(it, false)
		switch {
		case !sok:
			ok = false
		case strings.TrimSpace(s.value) == "":
			d.fail(it.pos(), it.path, "empty file name", s.emptyHint())
			ok = false
		default:
			*v.p = append(*v.p, s.value)
		}
	}
	return ok
}

func (v *files) encode() *yaml.Node { return seqOf(*v.p) }

func (v *files) redact(bool) { *v.p = slices.Clone(*v.p) }

// labelRE is what a site label's name and value may be: they appear in
// selectors (label=value), URLs and Prometheus labels.
var labelRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$`)

// labels is a mapping of label names to values, such as a site's labels.
type labels struct {
	p *map[string]string
}

func (v *labels) reset() { *v.p = nil }

func (v *labels) decode(d *decoder, e entry, _ keyInfo) bool {
	pairs, ok := d.pairs(e, "a mapping of label names to values, e.g. {region: eu-west, tier: plant}")
	if !ok {
		return false
	}
	const hint = `use 1 to 63 letters, digits, ".", "_", "/" and "-", starting with a letter or digit`
	for _, pe := range pairs {
		name := pe.key.Value
		if !labelRE.MatchString(name) {
			d.fail(pe.key, pe.path, "invalid label name "+quote(name), hint)
			ok = false
			continue
		}
		s, sok := d.str(pe, false)
		if !sok {
			ok = false
			continue
		}
		if !labelRE.MatchString(s.value) {
			d.fail(pe.pos(), pe.path, "invalid label value "+quote(s.value), hint)
			ok = false
			continue
		}
		if *v.p == nil {
			*v.p = make(map[string]string, len(pairs))
		}
		(*v.p)[name] = s.value
	}
	return ok
}

func (v *labels) encode() *yaml.Node { return stringMapNode(*v.p) }

// stringMapNode encodes a mapping of strings, its keys sorted; nil when
// empty.
func stringMapNode(m map[string]string) *yaml.Node {
	if len(m) == 0 {
		return nil
	}
	n := mapNode()
	for _, k := range slices.Sorted(maps.Keys(m)) {
		n.Content = append(n.Content, keyNode(k), strNode(m[k]))
	}
	return n
}

func (v *labels) redact(bool) { *v.p = maps.Clone(*v.p) }

// expression is a CEL filter expression, compiled and type-checked as it
// is decoded. A problem is reported at its position in the file: within a
// one-line expression at its column, else with the line and column in the
// expression.
type expression struct {
	p *string
	// any accepts an expression of any type (a key), number one giving
	// a number (an aggregate's value); else it must give a bool (a filter).
	any, number bool
}

func (v *expression) reset() { *v.p = "" }

func (v *expression) decode(d *decoder, e entry, k keyInfo) bool {
	s, ok := d.text(e, k, true)
	if !ok {
		return false
	}
	want, hint := cel.BoolType, "a filter must be true or false, e.g. json.temp > 80.0"
	switch {
	case v.any:
		want = nil
	case v.number:
		want, hint = cel.DoubleType, "a value must be a number, e.g. json.temp (or double(json.count))"
	}
	_, err := transform.CompileFor(s, want, hint)
	var ce *transform.CompileError
	switch {
	case errors.As(err, &ce):
		n, msg := *e.val, ce.Msg
		oneLine := !strings.Contains(s, "\n") && (e.val.Style == 0 || e.val.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0)
		if oneLine && ce.Column > 0 && s == e.val.Value {
			n.Column += ce.Column - 1
			if e.val.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
				n.Column++
			}
		} else if ce.Line > 0 {
			msg = fmt.Sprintf("line %d, column %d of the expression: %s", ce.Line, ce.Column, msg)
		}
		d.fail(&n, e.path, "invalid CEL expression: "+firstLine(msg), ce.Hint)
		return false
	case err != nil:
		d.fail(e.val, e.path, "invalid CEL expression: "+err.Error(), "")
		return false
	}
	*v.p = s
	return true
}

// firstLine is s up to its first line break (CEL adds a source excerpt).
func firstLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}

func (v *expression) encode() *yaml.Node { return strNode(*v.p) }

func (v *expression) redact(bool) {}

// jsonPaths is a projection's list of JSON paths, checked as it is
// decoded.
type jsonPaths struct {
	p    *[]string
	drop bool
}

func (v *jsonPaths) reset() { *v.p = nil }

func (v *jsonPaths) decode(d *decoder, e entry, _ keyInfo) bool {
	items, ok := d.list(e, "a list of JSON paths, e.g. [id, reading.temp]")
	if !ok {
		return false
	}
	var paths []string
	for _, it := range items {
		s, sok := d.str(it, false)
		if !sok {
			return false
		}
		paths = append(paths, s.value)
	}
	if len(paths) == 0 {
		d.fail(e.pos(), e.path, "no paths listed", "list at least one JSON path, e.g. [id, reading.temp]")
		return false
	}
	_, err := transform.NewProjection(paths, v.drop)
	var pe *transform.PathError
	if errors.As(err, &pe) {
		d.fail(items[pe.Index].pos(), items[pe.Index].path, pe.Error(), "")
		return false
	}
	*v.p = paths
	return true
}

func (v *jsonPaths) encode() *yaml.Node { return seqOf(*v.p) }

func (v *jsonPaths) redact(bool) { *v.p = slices.Clone(*v.p) }

// expressions maps names to CEL expressions giving numbers (an
// aggregate's values).
type expressions struct {
	p *map[string]string
}

func (v *expressions) reset() { *v.p = nil }

func (v *expressions) decode(d *decoder, e entry, _ keyInfo) bool {
	pairs, ok := d.pairs(e, "a mapping of names to CEL expressions, e.g. {temp: json.temp}")
	if !ok {
		return false
	}
	if len(pairs) == 0 {
		d.fail(e.pos(), e.path, "no values named", "name at least one, e.g. values: {temp: json.temp}")
		return false
	}
	for _, pe := range pairs {
		name := pe.key.Value
		if !labelRE.MatchString(name) || name == "count" || name == "window_start" || name == "window_end" {
			d.fail(pe.key, pe.path, "invalid value name "+quote(name), "use letters, digits, \".\", \"_\" and \"-\"; count, window_start and window_end are taken")
			ok = false
			continue
		}
		var src string
		if !(&expression{p: &src, number: true}).decode(d, pe, keyInfo{name: name, required: true}) {
			ok = false
			continue
		}
		if *v.p == nil {
			*v.p = make(map[string]string, len(pairs))
		}
		(*v.p)[name] = src
	}
	return ok
}

func (v *expressions) encode() *yaml.Node { return stringMapNode(*v.p) }

func (v *expressions) redact(bool) { *v.p = maps.Clone(*v.p) }

// functions is an aggregate's list of functions, kept in
// AggregateFunctions' order; absent means all of them.
type functions struct {
	p *[]string
}

func (v *functions) reset() { *v.p = nil }

func (v *functions) decode(d *decoder, e entry, _ keyInfo) bool {
	items, ok := d.list(e, "a list of functions, e.g. [min, max, mean]")
	if !ok {
		return false
	}
	want := make(map[string]bool)
	for _, it := range items {
		s, sok := d.str(it, false)
		if !sok {
			return false
		}
		if !slices.Contains(AggregateFunctions, s.value) {
			d.fail(it.pos(), it.path, "unknown function "+quote(s.value), "use "+strings.Join(AggregateFunctions, ", "))
			return false
		}
		want[s.value] = true
	}
	if len(want) == 0 {
		d.fail(e.pos(), e.path, "no functions listed", "list at least one of "+strings.Join(AggregateFunctions, ", "))
		return false
	}
	var out []string
	for _, f := range AggregateFunctions {
		if want[f] {
			out = append(out, f)
		}
	}
	*v.p = out
	return true
}

func (v *functions) encode() *yaml.Node {
	if len(*v.p) == 0 {
		return nil
	}
	return seqOf(*v.p)
}

func (v *functions) redact(bool) { *v.p = slices.Clone(*v.p) }
