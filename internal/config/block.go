package config

import (
	"maps"
	"slices"
	"strings"

	"go.yaml.in/yaml/v4"
)

// A block is the schema of a YAML mapping that decodes into a T: its keys,
// and hooks for the rules that involve more than one key. The schema is
// declared in schema.go; this file walks it.
//
// The order of the keys is the order in which they are written out and
// offered in "did you mean" hints (the earlier of two equally close keys
// wins), and, unless the block's decode hook says otherwise, the order in
// which they are decoded, which orders problems reported at the same
// position.
type block[T any] struct {
	// what names the mapping in "expected a mapping of settings for ..."
	// messages.
	what string
	keys []key[T]
	// decode, when set, decodes the keys itself (with mapping.decode and
	// mapping.rest), for blocks where which keys apply depends on another
	// key's value, or whose keys are not decoded in order. Without it every
	// key is decoded, in order.
	decode func(m *mapping[T])
	// check, when set, runs after the keys are decoded, for rules
	// between keys.
	check func(m *mapping[T])
}

// A key is one key of a block, declared in one place: its name in the file,
// the Go field it fills along with its default and constraints (value),
// whether it is required, and the hint for a missing or empty value.
type key[T any] struct {
	// name is the key as written in the file.
	name string
	// value binds the key to its field of t, and says how a value is
	// parsed, what the default is and what constraints apply.
	value func(t *T) value
	// required keys must be present, and a required scalar must not be
	// empty.
	required bool
	// hint says how to fix a missing or empty value.
	hint string
	// secret values are never shown in error messages, and Config.Redacted
	// replaces them.
	secret bool
	// excludes names a key that cannot be set together with this one.
	// When both are present the conflict is reported, at the later one,
	// and neither is decoded.
	excludes string
	// check, when set, runs after the key decoded without problems, for a
	// rule involving keys decoded before it.
	check func(m *mapping[T], e entry)
}

// A value is the Go field (or fields) of one key of one mapping. Each kind
// of value is a type that implements it: scalars (text, enum, duration,
// ...) in values.go, nested mappings and lists of them at the end of this
// file.
type value interface {
	// reset sets the field to its default.
	reset()
	// decode parses e, the key's entry, into the field. It reports every
	// problem it finds and returns false if it found one; the field then
	// holds its default or a partial value.
	decode(d *decoder, e entry, k keyInfo) bool
	// encode returns the field as a YAML node that decodes back into the
	// same value, or nil when the key is better left out (it is empty).
	encode() *yaml.Node
	// redact makes the field share nothing mutable with the Config it was
	// copied from, and replaces it with "[redacted]" when secret is set
	// and it is not empty.
	redact(secret bool)
}

// keyInfo is what a value needs to know about its key to decode it.
type keyInfo struct {
	name, hint       string
	required, secret bool
}

// A hinter is a value whose hint for a missing or empty value depends on
// the rest of the file.
type hinter interface {
	hint(d *decoder, base string) string
}

// names returns the keys of the block in order.
func (b *block[T]) names() []string {
	out := make([]string, len(b.keys))
	for i, k := range b.keys {
		out[i] = k.name
	}
	return out
}

// required returns the names of the required keys in order.
func (b *block[T]) required() []string {
	var out []string
	for _, k := range b.keys {
		if k.required {
			out = append(out, k.name)
		}
	}
	return out
}

// key returns the key named name, which must exist.
func (b *block[T]) key(name string) *key[T] {
	for i := range b.keys {
		if b.keys[i].name == name {
			return &b.keys[i]
		}
	}
	panic("config: block " + b.what + " has no key " + name)
}

// reset sets every field of t that belongs to a key to its default.
func (b *block[T]) reset(t *T) {
	for _, k := range b.keys {
		k.value(t).reset()
	}
}

// read decodes the mapping e into t, which starts from the defaults. what
// names the mapping in messages. It returns false when e is not a mapping.
func (b *block[T]) read(d *decoder, e entry, t *T, what string) bool {
	b.reset(t)
	fields, ok := d.fields(e, b.names(), what)
	if !ok {
		return false
	}
	m := &mapping[T]{d: d, e: e, t: t, b: b, fields: fields, done: map[string]bool{}, good: map[string]bool{}}
	if b.decode != nil {
		b.decode(m)
	} else {
		m.rest()
	}
	if b.check != nil {
		b.check(m)
	}
	return true
}

// encode writes t out as a mapping of its non-empty keys.
func (b *block[T]) encode(t *T) *yaml.Node {
	n := mapNode()
	for _, k := range b.keys {
		if v := k.value(t).encode(); v != nil {
			n.Content = append(n.Content, keyNode(k.name), v)
		}
	}
	return n
}

// redact copies what t shares with the Config it was copied from and
// replaces its secrets.
func (b *block[T]) redact(t *T) {
	for _, k := range b.keys {
		k.value(t).redact(k.secret)
	}
}

// A mapping is a YAML mapping being decoded into a T by its block.
type mapping[T any] struct {
	d *decoder
	// e is the mapping itself.
	e entry
	t *T
	b *block[T]
	// fields holds the keys present in the file, by name.
	fields map[string]entry
	// done holds the keys already decoded (or ruled out); good those that
	// were present and decoded without problems.
	done, good map[string]bool
}

// has reports whether the key is present in the file.
func (m *mapping[T]) has(name string) bool {
	_, ok := m.fields[name]
	return ok
}

// decode decodes the named keys in order and reports whether all of them
// are usable: present and valid, or absent and optional.
func (m *mapping[T]) decode(names ...string) bool {
	ok := true
	for _, name := range names {
		if !m.decodeHint(name, m.b.key(name).hint) {
			ok = false
		}
	}
	return ok
}

// decodeHint decodes one key, with hint for a missing or empty value in
// place of the key's own.
func (m *mapping[T]) decodeHint(name, hint string) bool {
	k := m.b.key(name)
	e, present := m.fields[name]
	if present && k.excludes != "" && m.has(k.excludes) {
		if !m.done[k.excludes] {
			m.conflict(name, k.excludes)
		}
		m.done[name] = true
		return false
	}
	m.done[name] = true
	v := k.value(m.t)
	if h, ok := v.(hinter); ok {
		hint = h.hint(m.d, hint)
	}
	if !present {
		if k.required {
			m.missing(name, hint)
			return false
		}
		return true
	}
	if !v.decode(m.d, e, keyInfo{name: name, hint: hint, required: k.required, secret: k.secret}) {
		return false
	}
	m.good[name] = true
	if k.check != nil {
		k.check(m, e)
	}
	return true
}

// rest decodes, in order, the keys not decoded yet.
func (m *mapping[T]) rest() {
	for _, k := range m.b.keys {
		if !m.done[k.name] {
			m.decode(k.name)
		}
	}
}

// missing reports that the named key is absent.
func (m *mapping[T]) missing(name, hint string) {
	m.d.missing(m.e, name, hint)
}

// conflict reports when both of two mutually exclusive keys are present, at
// the one that comes later in the file.
func (m *mapping[T]) conflict(a, b string) {
	m.d.exclusive(m.fields, a, b)
}

// The kinds of value that hold nested mappings.

// sub is a nested mapping held by value; when absent, its keys take their
// defaults.
type sub[T any] struct {
	p *T
	b *block[T]
}

func (s *sub[T]) reset() { s.b.reset(s.p) }

func (s *sub[T]) decode(d *decoder, e entry, _ keyInfo) bool {
	n := len(d.errs)
	s.b.read(d, e, s.p, s.b.what)
	return len(d.errs) == n
}

func (s *sub[T]) encode() *yaml.Node {
	if n := s.b.encode(s.p); len(n.Content) > 0 {
		return n
	}
	return nil
}

func (s *sub[T]) redact(bool) { s.b.redact(s.p) }

// subPtr is a nested mapping held by pointer: nil when absent or empty
// (nothing, ~), so that "tls: {}" is not the same as no tls at all.
type subPtr[T any] struct {
	p **T
	b *block[T]
}

func (o *subPtr[T]) reset() { *o.p = nil }

func (o *subPtr[T]) decode(d *decoder, e entry, _ keyInfo) bool {
	if isNull(e.val) {
		return true
	}
	n := len(d.errs)
	*o.p = new(T)
	o.b.read(d, e, *o.p, o.b.what)
	return len(d.errs) == n
}

func (o *subPtr[T]) encode() *yaml.Node {
	if *o.p == nil {
		return nil
	}
	return o.b.encode(*o.p)
}

func (o *subPtr[T]) redact(bool) {
	if *o.p != nil {
		cp := **o.p
		o.b.redact(&cp)
		*o.p = &cp
	}
}

// list is a list of nested mappings. Items with problems are left out.
type list[T any] struct {
	p *[]T
	b *block[T]
	// want describes the list in "expected ..., got ..." messages.
	want string
}

func (l *list[T]) reset() { *l.p = nil }

func (l *list[T]) decode(d *decoder, e entry, _ keyInfo) bool {
	n := len(d.errs)
	items, _ := d.list(e, l.want)
	for _, it := range items {
		before := len(d.errs)
		var t T
		if l.b.read(d, it, &t, l.b.what) && len(d.errs) == before {
			*l.p = append(*l.p, t)
		}
	}
	return len(d.errs) == n
}

func (l *list[T]) encode() *yaml.Node {
	if len(*l.p) == 0 {
		return nil
	}
	n := seqNode()
	for i := range *l.p {
		n.Content = append(n.Content, l.b.encode(&(*l.p)[i]))
	}
	return n
}

func (l *list[T]) redact(bool) {
	*l.p = slices.Clone(*l.p)
	for i := range *l.p {
		l.b.redact(&(*l.p)[i])
	}
}

// listPtr is a list of nested mappings held by pointer. An empty item
// (nothing, ~) is reported as empty; other items with problems are left
// out.
type listPtr[T any] struct {
	p *[]*T
	b *block[T]
	// want describes the list in "expected ..., got ..." messages, and
	// empty an empty item: "empty link".
	want, empty string
}

func (l *listPtr[T]) reset() { *l.p = nil }

func (l *listPtr[T]) decode(d *decoder, e entry, _ keyInfo) bool {
	n := len(d.errs)
	items, _ := d.list(e, l.want)
	for _, it := range items {
		if isNull(it.val) {
			d.fail(it.val, it.path, l.empty, l.b.what+" needs "+andList(l.b.required()))
			continue
		}
		before := len(d.errs)
		t := new(T)
		if l.b.read(d, it, t, l.b.what) && len(d.errs) == before {
			*l.p = append(*l.p, t)
		}
	}
	return len(d.errs) == n
}

func (l *listPtr[T]) encode() *yaml.Node {
	if len(*l.p) == 0 {
		return nil
	}
	n := seqNode()
	for _, t := range *l.p {
		if t != nil {
			n.Content = append(n.Content, l.b.encode(t))
		}
	}
	return n
}

func (l *listPtr[T]) redact(bool) {
	*l.p = slices.Clone(*l.p)
	for i, t := range *l.p {
		if t != nil {
			cp := *t
			l.b.redact(&cp)
			(*l.p)[i] = &cp
		}
	}
}

// clusters is the mapping of cluster names to clusters, kept in a map and,
// in file order, in a list of names.
type clusters struct {
	m     *map[string]*Cluster
	order *[]string
	b     *block[Cluster]
}

func (c *clusters) reset() { *c.m, *c.order = map[string]*Cluster{}, nil }

func (c *clusters) decode(d *decoder, e entry, _ keyInfo) bool {
	n := len(d.errs)
	entries, ok := d.pairs(e, "a mapping of cluster names to cluster settings")
	d.refs.clustersOK = ok
	if ok && len(entries) == 0 {
		d.fail(e.pos(), e.path, "no clusters defined", "define at least one cluster, e.g. edge: {bootstrap: [\"127.0.0.1:9092\"]}")
	}
	for _, ce := range entries {
		cl := &Cluster{Name: ce.key.Value}
		if !nameRE.MatchString(cl.Name) {
			hint := nameHint
			if strings.Contains(cl.Name, "${") {
				hint += "; environment variables are expanded in values only, not in keys"
			}
			d.fail(ce.key, ce.path, "invalid cluster name "+quote(cl.Name), hint)
		}
		c.b.read(d, ce, cl, "cluster "+quote(cl.Name))
		(*c.m)[cl.Name] = cl
		*c.order = append(*c.order, cl.Name)
	}
	d.refs.clusters = *c.order
	return len(d.errs) == n
}

func (c *clusters) encode() *yaml.Node {
	n := mapNode()
	for _, name := range *c.order {
		if cl := (*c.m)[name]; cl != nil {
			n.Content = append(n.Content, keyNode(name), c.b.encode(cl))
		}
	}
	if len(n.Content) == 0 {
		return nil
	}
	return n
}

func (c *clusters) redact(bool) {
	*c.order = slices.Clone(*c.order)
	*c.m = maps.Clone(*c.m)
	for name, cl := range *c.m {
		if cl != nil {
			cp := *cl
			c.b.redact(&cp)
			(*c.m)[name] = &cp
		}
	}
}

// andList joins words as "a, b and c".
func andList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " and " + words[len(words)-1]
}

// YAML nodes for writing a Config out.

func mapNode() *yaml.Node { return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"} }

func seqNode() *yaml.Node { return &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"} }

// keyNode is a mapping key; keys are never expanded, so it is written as is.
func keyNode(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }

// strNode is a string, with "${" written as "$${" so that it is not
// expanded when read back; nil for "".
func strNode(s string) *yaml.Node {
	if s == "" {
		return nil
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: strings.ReplaceAll(s, "${", "$${")}
}

// seqOf is a list of strings; nil when it is empty.
func seqOf(items []string) *yaml.Node {
	if len(items) == 0 {
		return nil
	}
	n := seqNode()
	for _, s := range items {
		if v := strNode(s); v != nil {
			n.Content = append(n.Content, v)
		}
	}
	return n
}
