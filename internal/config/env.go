package config

import (
	"slices"
	"strings"
)

// LookupFunc looks up an environment variable, like os.LookupEnv.
type LookupFunc func(name string) (value string, ok bool)

// expansion is the result of expanding ${VAR} references in one value.
type expansion struct {
	value string
	// vars lists the variables that were substituted, in order.
	vars []string
	// unset lists the referenced variables that are not set, in order,
	// without repeats.
	unset []string
	// malformed is the first malformed reference ("${", "${1X}", ...), if any.
	malformed string
}

// expand replaces ${NAME} with the value of the environment variable NAME.
// "$${" stands for a literal "${". Any other "$" is kept as is. Substituted
// values are not expanded again.
func expand(s string, lookup LookupFunc) expansion {
	if !strings.Contains(s, "${") {
		return expansion{value: s}
	}
	var x expansion
	var b strings.Builder
	for i := 0; i < len(s); {
		switch {
		case strings.HasPrefix(s[i:], "$${"):
			b.WriteString("${")
			i += 3
		case strings.HasPrefix(s[i:], "${"):
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				if x.malformed == "" {
					x.malformed = s[i:]
				}
				b.WriteString(s[i:])
				i = len(s)
				continue
			}
			name := s[i+2 : i+2+end]
			ref := s[i : i+2+end+1]
			i += len(ref)
			if !isEnvName(name) {
				if x.malformed == "" {
					x.malformed = ref
				}
				b.WriteString(ref)
				continue
			}
			v, ok := lookup(name)
			if !ok {
				if !slices.Contains(x.unset, name) {
					x.unset = append(x.unset, name)
				}
				continue
			}
			x.vars = append(x.vars, name)
			b.WriteString(v)
		default:
			b.WriteByte(s[i])
			i++
		}
	}
	x.value = b.String()
	return x
}

// isEnvName reports whether s is a valid environment variable name:
// a letter or underscore, then letters, digits or underscores.
func isEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
