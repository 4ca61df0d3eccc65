package config

import (
	"slices"

	"go.yaml.in/yaml/v4"
)

// LocalKeys are the top-level keys a configuration revision from the fleet
// cannot set: they stay as the site's own file has them. The site is the
// agent's identity, its labels decide which revisions select it, the
// fleet block holds the keys it trusts, and the HTTP server does not
// change while the agent runs.
var LocalKeys = []string{"site", "site_labels", "fleet", "http"}

// ParseRevision parses a configuration revision from the fleet, doc, for
// the agent whose own configuration file is localFile with the text
// local: doc is decoded and validated as Parse would (its ${VAR}
// references resolve here, through lookup, so a central document keeps
// its secrets at the sites), with the LocalKeys taken from the local
// file. A doc that sets one of them is refused, except a site equal to the
// local one. name stands for the document in messages (such as
// "revision 12").
func ParseRevision(name string, doc []byte, localFile string, local []byte, lookup LookupFunc) (*Config, error) {
	if lookup == nil {
		lookup = func(string) (string, bool) { return "", false }
	}
	d := &decoder{file: name, data: doc, lookup: lookup, refs: refs{links: map[string]int{}}}
	root, ok := d.document()
	if !ok {
		return nil, d.errs
	}
	if root.Kind != yaml.MappingNode {
		d.fail(root, "", "expected a mapping of settings, got "+describe(root), "")
		return nil, d.errs
	}
	var localRoot *yaml.Node
	localSite := ""
	if len(local) > 0 {
		ld := &decoder{file: localFile, data: local}
		if n, ok := ld.document(); ok && n.Kind == yaml.MappingNode {
			localRoot = n
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == "site" {
					localSite = expand(resolve(n.Content[i+1]).Value, lookup).value
				}
			}
		}
	}
	merged := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: root.Line, Column: root.Column}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if !slices.Contains(LocalKeys, k.Value) {
			merged.Content = append(merged.Content, k, v)
			continue
		}
		if k.Value == "site" && resolve(v).Kind == yaml.ScalarNode && expand(resolve(v).Value, lookup).value == localSite {
			continue
		}
		hint := "remove " + k.Value + " from the revision: it is local to each site"
		if k.Value == "site" {
			hint = "the revision must not change the site's identity; remove site from it"
		}
		d.fail(k, k.Value, "cannot be set by a fleet revision", hint)
	}
	if localRoot != nil {
		for i := 0; i+1 < len(localRoot.Content); i += 2 {
			if k := localRoot.Content[i]; slices.Contains(LocalKeys, k.Value) {
				merged.Content = append(merged.Content, k, localRoot.Content[i+1])
			}
		}
	}
	// The rest of the document is checked too, so that every problem is
	// reported at once.
	cfg := &Config{File: name}
	rootBlock.read(d, entry{val: merged}, cfg, rootBlock.what)
	if len(d.errs) > 0 {
		sortErrors(d.errs)
		return nil, d.errs
	}
	return cfg, nil
}
