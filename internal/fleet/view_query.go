package fleet

import "slices"

// SiteStates returns the states a site can be in, worst first: the keys of
// Summary.ByState, and what the fleet API's ?state= filter takes besides
// "stale".
func SiteStates() []string { return slices.Clone(siteStates) }
