package config

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Error is one problem in a configuration file, with the position of the
// offending YAML node, the dotted path of the field and a hint on how to fix it.
type Error struct {
	// File is the file name given to Parse or Load.
	File string
	// Line and Column are 1-based; Line is 0 for problems with the file as a
	// whole (an empty file), and Column is 0 when unknown.
	Line, Column int
	// Field is the path of the field, such as "clusters.cloud.bootstrap[0]"
	// or "links[1].topics.include[0]"; empty for YAML syntax errors.
	Field string
	// Msg says what is wrong.
	Msg string
	// Hint says how to fix it; may be empty.
	Hint string
}

// Error formats the problem as "FILE:LINE:COL: FIELD: MSG (HINT)".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ":%d", e.Column)
		}
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.Hint != "" {
		b.WriteString(" (")
		b.WriteString(e.Hint)
		b.WriteString(")")
	}
	return b.String()
}

// Errors is every problem found in a configuration file, sorted by position.
// Parse returns an Errors value for any problem with the file's contents.
type Errors []*Error

// Error formats each problem on its own line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the individual problems, so that errors.As finds an *Error.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// IsInvalid reports whether err (or an error it wraps) describes a problem in
// the configuration itself, as opposed to a failure to read the file.
func IsInvalid(err error) bool {
	var es Errors
	if errors.As(err, &es) {
		return true
	}
	var e *Error
	return errors.As(err, &e)
}

// sortErrors orders errors by position, keeping the order of discovery for
// errors at the same position.
func sortErrors(es Errors) {
	slices.SortStableFunc(es, func(a, b *Error) int {
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Column - b.Column
	})
}

// suggest returns the candidate closest to s: a case-insensitive match, or
// one within a small edit distance (insertions, deletions, substitutions and
// transpositions). It returns "" when nothing is close enough.
func suggest(s string, candidates []string) string {
	if s == "" {
		return ""
	}
	for _, c := range candidates {
		if strings.EqualFold(s, c) {
			return c
		}
	}
	limit := 2
	if utf8.RuneCountInString(s) <= 4 {
		limit = 1
	}
	best, bestDist := "", limit+1
	for _, c := range candidates {
		if d := editDistance(strings.ToLower(s), strings.ToLower(c)); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance between a and b:
// Levenshtein distance where swapping two adjacent runes costs 1.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	// Three rolling rows: two back, previous and current.
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}

// maxQuoted is how many runes of a value an error message shows.
const maxQuoted = 100

// quote shows a value from the file in double quotes, as written when it is
// plain printable text (so regular expressions keep single backslashes), and
// Go-escaped otherwise. Long values are cut short.
func quote(s string) string {
	s = truncate(s)
	if strings.ContainsRune(s, '"') || !isPrintable(s) {
		return strconv.Quote(s)
	}
	return `"` + s + `"`
}

// truncate cuts s to maxQuoted runes, marking the cut with "...".
func truncate(s string) string {
	if utf8.RuneCountInString(s) <= maxQuoted {
		return s
	}
	return string([]rune(s)[:maxQuoted]) + "..."
}

func isPrintable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !strconv.IsPrint(r) {
			return false
		}
	}
	return true
}

// quoteList formats a list of words as `"a", "b" or "c"`.
func quoteList(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = quote(w)
	}
	switch len(q) {
	case 0:
		return ""
	case 1:
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}
