package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v4"
)

// simpleKeyRE matches keys that can be written after a dot in a field path.
var simpleKeyRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

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
	// refs is what keys that refer to other parts of the file need to know.
	refs refs
}

// refs is what the decoder has learnt about the file that later keys refer
// to: link names and the cluster a link reads from, say.
type refs struct {
	// clusters lists the cluster names in file order; clustersOK is false
	// when "clusters" itself is missing or unusable, so that references
	// to clusters are not checked.
	clusters   []string
	clustersOK bool
	// siteSet is true when a site is set (or was reported as invalid).
	siteSet bool
	// links maps each link name seen so far to its line.
	links map[string]int
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
	cfg := &Config{File: d.file}
	if root.Kind != yaml.MappingNode {
		d.fail(root, "", "expected a mapping of settings ("+strings.Join(rootBlock.names(), ", ")+"), got "+describe(root), "")
		return cfg
	}
	rootBlock.read(d, entry{val: root}, cfg, rootBlock.what)
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
