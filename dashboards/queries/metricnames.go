package queries

import (
	"fmt"
	"slices"
	"strings"
)

// MetricNames returns the distinct metric names that the PromQL expression
// expr selects, sorted. It is a lexer, not a parser: it expects an expression
// that Prometheus accepts (check that with promtool) and finds the
// identifiers that stand where a metric name stands, skipping function and
// aggregation names, keywords, label names, strings, numbers and durations.
// Template variables must have been expanded. A selector that names its
// metric through __name__ is an error: the name could not be checked.
func MetricNames(expr string) ([]string, error) {
	l := lexer{s: expr}
	var names []string
	for {
		tok, err := l.next()
		if err != nil {
			return nil, fmt.Errorf("%w in %q", err, expr)
		}
		if tok == "" {
			break
		}
		if !slices.Contains(names, tok) {
			names = append(names, tok)
		}
	}
	slices.Sort(names)
	return names, nil
}

// keywords are identifiers that are never metric names. Aggregations are
// here because they may be followed by "by"/"without" instead of "(".
var keywords = map[string]bool{
	"and": true, "or": true, "unless": true, "atan2": true,
	"by": true, "without": true, "on": true, "ignoring": true,
	"group_left": true, "group_right": true, "bool": true, "offset": true,
	"inf": true, "nan": true,
	"sum": true, "avg": true, "count": true, "min": true, "max": true,
	"group": true, "stddev": true, "stdvar": true, "topk": true,
	"bottomk": true, "count_values": true, "quantile": true,
	"limitk": true, "limit_ratio": true,
}

// labelListKeywords are followed by a parenthesised list of label names.
var labelListKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true,
	"group_left": true, "group_right": true,
}

type lexer struct {
	s string
	i int
}

// next returns the next metric name, or "" at the end of the expression.
func (l *lexer) next() (string, error) {
	for l.i < len(l.s) {
		c := l.s[l.i]
		switch {
		case c == '#': // comment to the end of the line
			for l.i < len(l.s) && l.s[l.i] != '\n' {
				l.i++
			}
		case c == '"' || c == '\'' || c == '`':
			if err := l.skipString(); err != nil {
				return "", err
			}
		case c == '{':
			if err := l.skipMatchers(); err != nil {
				return "", err
			}
		case c == '[':
			if err := l.skipUntil(']'); err != nil {
				return "", err
			}
		case isDigit(c) || c == '.':
			l.skipNumber()
		case isIdentStart(c):
			word := l.ident()
			lower := strings.ToLower(word)
			if keywords[lower] {
				if labelListKeywords[lower] && l.peekNonSpace() == '(' {
					if err := l.skipUntil(')'); err != nil {
						return "", err
					}
				}
				continue
			}
			if l.peekNonSpace() == '(' {
				continue // a function call
			}
			return word, nil
		default:
			l.i++
		}
	}
	return "", nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isIdentStart(c byte) bool {
	return c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdentChar(c byte) bool { return isIdentStart(c) || isDigit(c) }

func (l *lexer) ident() string {
	start := l.i
	for l.i < len(l.s) && isIdentChar(l.s[l.i]) {
		l.i++
	}
	return l.s[start:l.i]
}

func (l *lexer) peekNonSpace() byte {
	for j := l.i; j < len(l.s); j++ {
		switch l.s[j] {
		case ' ', '\t', '\n', '\r':
			continue
		default:
			return l.s[j]
		}
	}
	return 0
}

// skipNumber skips a number or a duration: 3, 0.5, 1e-3, 0x1f, 5m, 1h30m.
func (l *lexer) skipNumber() {
	for l.i < len(l.s) {
		c := l.s[l.i]
		switch {
		case isIdentChar(c) || c == '.':
			l.i++
		case (c == '+' || c == '-') && (l.s[l.i-1] == 'e' || l.s[l.i-1] == 'E') &&
			!strings.HasPrefix(strings.ToLower(l.s[:l.i]), "0x"):
			l.i++
		default:
			return
		}
	}
}

func (l *lexer) skipString() error {
	quote := l.s[l.i]
	start := l.i
	for l.i++; l.i < len(l.s); l.i++ {
		switch l.s[l.i] {
		case '\\':
			if quote != '`' {
				l.i++
			}
		case quote:
			l.i++
			return nil
		}
	}
	return fmt.Errorf("unterminated string at offset %d", start)
}

// skipUntil skips to just past the closer of the bracket at l.i, stepping
// over strings.
func (l *lexer) skipUntil(closer byte) error {
	start := l.i
	for l.i < len(l.s) {
		switch c := l.s[l.i]; {
		case c == closer:
			l.i++
			return nil
		case c == '"' || c == '\'' || c == '`':
			if err := l.skipString(); err != nil {
				return err
			}
		default:
			l.i++
		}
	}
	return fmt.Errorf("unclosed %q at offset %d", l.s[start], start)
}

// skipMatchers skips a {label matcher list}, refusing __name__.
func (l *lexer) skipMatchers() error {
	start := l.i
	l.i++
	for l.i < len(l.s) {
		c := l.s[l.i]
		switch {
		case c == '}':
			l.i++
			return nil
		case c == '"' || c == '\'' || c == '`':
			if err := l.skipString(); err != nil {
				return err
			}
		case isIdentStart(c):
			if l.ident() == "__name__" {
				return fmt.Errorf("selector names its metric with __name__ at offset %d", start)
			}
		default:
			l.i++
		}
	}
	return fmt.Errorf("unclosed '{' at offset %d", start)
}
