package transform

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

// Projection rewrites a JSON object value: Keep keeps only the listed
// paths, Drop removes them (exactly one of the two is set). A path is
// field names joined by dots ("reading.temp"); a path that is absent is
// ignored.
type Projection struct {
	keep, drop [][]string
}

var fieldRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

// NewProjection returns the projection keeping (or, with drop, dropping)
// paths; an invalid path is reported with its index.
func NewProjection(paths []string, drop bool) (*Projection, error) {
	parsed := make([][]string, len(paths))
	for i, p := range paths {
		parts := strings.Split(p, ".")
		for _, f := range parts {
			if !fieldRE.MatchString(f) {
				return nil, &PathError{Index: i, Path: p}
			}
		}
		parsed[i] = parts
	}
	if drop {
		return &Projection{drop: parsed}, nil
	}
	return &Projection{keep: parsed}, nil
}

// PathError is an invalid path of a projection.
type PathError struct {
	Index int
	Path  string
}

func (e *PathError) Error() string {
	return fmt.Sprintf("invalid JSON path %q: write field names joined by dots, e.g. reading.temp", e.Path)
}

// Apply returns value rewritten. A value that is not a JSON object is an
// ErrNotJSON error.
func (p *Projection) Apply(value []byte) ([]byte, error) {
	v, err := parseJSON(value)
	if err != nil {
		return nil, err
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: a projection needs a JSON object, the value is %s", ErrNotJSON, kind(v))
	}
	if p.keep != nil {
		out := map[string]any{}
		for _, path := range p.keep {
			copyPath(obj, out, path)
		}
		obj = out
	}
	for _, path := range p.drop {
		dropPath(obj, path)
	}
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encode the projected value: %w", err)
	}
	return b, nil
}

// copyPath copies path from src into dst, creating the objects on the way.
func copyPath(src, dst map[string]any, path []string) {
	v, ok := src[path[0]]
	if !ok {
		return
	}
	if len(path) == 1 {
		dst[path[0]] = v
		return
	}
	sub, ok := v.(map[string]any)
	if !ok {
		return
	}
	next, ok := dst[path[0]].(map[string]any)
	if !ok {
		next = map[string]any{}
	}
	copyPath(sub, next, path[1:])
	if len(next) > 0 {
		dst[path[0]] = next
	}
}

// dropPath removes path from obj.
func dropPath(obj map[string]any, path []string) {
	if len(path) == 1 {
		delete(obj, path[0])
		return
	}
	if sub, ok := obj[path[0]].(map[string]any); ok {
		dropPath(sub, path[1:])
	}
}

func kind(v any) string {
	switch v.(type) {
	case []any:
		return "an array"
	case string:
		return "a string"
	case float64:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return "not an object"
}
