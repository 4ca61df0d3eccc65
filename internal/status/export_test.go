package status

import (
	"slices"

	"github.com/edgelink/edgelink/internal/link"
)

// Watched returns the links whose source the model follows now, by name.
func Watched(m *Model) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var names []string
	for l := range m.watches {
		names = append(names, l.Name())
	}
	slices.Sort(names)
	return names
}

// Sampled returns the links the model keeps samples of.
func Sampled(m *Model) []*link.Link {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*link.Link
	for l := range m.samples {
		out = append(out, l)
	}
	return out
}
