package observe

import (
	"slices"

	"github.com/edgelink/edgelink/internal/link"
)

// Watched returns the links whose source the server follows now, by name.
func Watched(s *Server) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for l := range s.watches {
		names = append(names, l.Name())
	}
	slices.Sort(names)
	return names
}

// Sampled returns the links the server keeps samples of.
func Sampled(s *Server) []*link.Link {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*link.Link
	for l := range s.samples {
		out = append(out, l)
	}
	return out
}
