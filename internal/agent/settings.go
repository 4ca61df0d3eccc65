package agent

import (
	"reflect"
	"regexp"

	"github.com/edgelink/edgelink/internal/config"
)

// settings is a link's effective configuration: everything a running link
// depends on. Two links with equal settings replicate alike, so a reload
// that leaves them equal leaves the link running.
type settings struct {
	// Site is the top-level site: it names mirror topics, transactional
	// ids and provenance headers.
	Site string
	// Link is the link's own configuration.
	Link *config.Link
	// From and To are its source and destination clusters.
	From, To *config.Cluster
}

func settingsOf(cfg *config.Config, lc *config.Link) settings {
	return settings{Site: cfg.Site, Link: lc, From: cfg.Clusters[lc.From], To: cfg.Clusters[lc.To]}
}

var regexpType = reflect.TypeFor[*regexp.Regexp]()

// equal reports whether two settings are the same configuration. It
// compares values, not identities: compiled regular expressions by their
// source, and nil and empty slices and maps alike. Whatever it cannot
// compare by value (a function, say) counts as changed, so that a doubt
// restarts a link rather than keeping a changed one.
func equal(a, b settings) bool {
	return equalValues(reflect.ValueOf(a), reflect.ValueOf(b))
}

func equalValues(a, b reflect.Value) bool {
	if a.Type() != b.Type() {
		return false
	}
	switch a.Kind() {
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		if a.Pointer() == b.Pointer() {
			return true
		}
		if a.Type() == regexpType && a.CanInterface() && b.CanInterface() {
			return a.Interface().(*regexp.Regexp).String() == b.Interface().(*regexp.Regexp).String()
		}
		return equalValues(a.Elem(), b.Elem())
	case reflect.Struct:
		for i := range a.NumField() {
			if !equalValues(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Slice, reflect.Array:
		if a.Len() != b.Len() {
			return false
		}
		for i := range a.Len() {
			if !equalValues(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Map:
		if a.Len() != b.Len() {
			return false
		}
		for _, k := range a.MapKeys() {
			bv := b.MapIndex(k)
			if !bv.IsValid() || !equalValues(a.MapIndex(k), bv) {
				return false
			}
		}
		return true
	case reflect.Interface:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return equalValues(a.Elem(), b.Elem())
	case reflect.Func, reflect.Chan, reflect.UnsafePointer:
		return a.IsNil() && b.IsNil()
	case reflect.Bool:
		return a.Bool() == b.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return a.Int() == b.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return a.Uint() == b.Uint()
	case reflect.Float32, reflect.Float64:
		return a.Float() == b.Float()
	case reflect.Complex64, reflect.Complex128:
		return a.Complex() == b.Complex()
	case reflect.String:
		return a.String() == b.String()
	default:
		return false
	}
}
