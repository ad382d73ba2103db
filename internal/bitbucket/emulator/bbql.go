package emulator

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// A subset of BBQL, the filter language of Bitbucket's q= parameter:
// comparisons of a field with a string, number, boolean or null, combined
// with AND, OR and parentheses, e.g. name ~ "api" AND is_private = true.
// "~" is case-insensitive containment, as on Bitbucket.

// fieldFunc returns the value of a field of the object being filtered and
// whether the field exists; values are string, bool, int or nil.
type fieldFunc func(name string) (any, bool)

type predicate func(fieldFunc) (bool, error)

type bbqlToken struct {
	kind string // "ident", "string", "number", "op", "(", ")", "eof"
	text string
}

func lexBBQL(q string) ([]bbqlToken, error) {
	var toks []bbqlToken
	rs := []rune(q)
	for i := 0; i < len(rs); {
		c := rs[i]
		switch {
		case unicode.IsSpace(c):
			i++
		case c == '(' || c == ')':
			toks = append(toks, bbqlToken{string(c), string(c)})
			i++
		case c == '"':
			var b strings.Builder
			i++
			for ; i < len(rs) && rs[i] != '"'; i++ {
				if rs[i] == '\\' && i+1 < len(rs) {
					i++
				}
				b.WriteRune(rs[i])
			}
			if i >= len(rs) {
				return nil, fmt.Errorf("unterminated string literal")
			}
			i++
			toks = append(toks, bbqlToken{"string", b.String()})
		case strings.ContainsRune("=!~<>", c):
			j := i + 1
			for j < len(rs) && strings.ContainsRune("=~", rs[j]) && j-i < 2 {
				j++
			}
			toks = append(toks, bbqlToken{"op", string(rs[i:j])})
			i = j
		case c == '-' || unicode.IsDigit(c):
			j := i + 1
			for j < len(rs) && (unicode.IsDigit(rs[j]) || rs[j] == '.') {
				j++
			}
			toks = append(toks, bbqlToken{"number", string(rs[i:j])})
			i = j
		case unicode.IsLetter(c) || c == '_':
			j := i + 1
			for j < len(rs) && (unicode.IsLetter(rs[j]) || unicode.IsDigit(rs[j]) || rs[j] == '_' || rs[j] == '.') {
				j++
			}
			toks = append(toks, bbqlToken{"ident", string(rs[i:j])})
			i = j
		default:
			return nil, fmt.Errorf("unexpected character %q", c)
		}
	}
	return append(toks, bbqlToken{kind: "eof"}), nil
}

type bbqlParser struct {
	toks []bbqlToken
	pos  int
}

func (p *bbqlParser) peek() bbqlToken { return p.toks[p.pos] }

// next consumes a token; it stays on the final "eof" token.
func (p *bbqlParser) next() bbqlToken {
	t := p.toks[p.pos]
	if t.kind != "eof" {
		p.pos++
	}
	return t
}

func (p *bbqlParser) keyword(k string) bool {
	t := p.peek()
	if t.kind == "ident" && strings.EqualFold(t.text, k) {
		p.pos++
		return true
	}
	return false
}

// parseBBQL compiles q into a predicate. The returned error is the message
// for the client's 400 answer.
func parseBBQL(q string) (predicate, error) {
	toks, err := lexBBQL(q)
	if err != nil {
		return nil, fmt.Errorf("Invalid query: %v", err)
	}
	p := &bbqlParser{toks: toks}
	pred, err := p.or()
	if err != nil {
		return nil, fmt.Errorf("Invalid query: %v", err)
	}
	if t := p.peek(); t.kind != "eof" {
		return nil, fmt.Errorf("Invalid query: unexpected %q", t.text)
	}
	return pred, nil
}

// or parses operands joined by OR; a match stops at the first true one.
func (p *bbqlParser) or() (predicate, error) { return p.joined("OR", p.and, true) }

// and parses operands joined by AND (binding tighter than OR); a match
// stops at the first false one.
func (p *bbqlParser) and() (predicate, error) { return p.joined("AND", p.primary, false) }

// joined parses operand {keyword operand}, grouping from the left. The
// predicate it returns evaluates the operands in order and stops, with
// that answer, at the first one that answers decisive or fails.
func (p *bbqlParser) joined(keyword string, operand func() (predicate, error), decisive bool) (predicate, error) {
	left, err := operand()
	if err != nil {
		return nil, err
	}
	for p.keyword(keyword) {
		right, err := operand()
		if err != nil {
			return nil, err
		}
		l := left
		left = func(f fieldFunc) (bool, error) {
			a, err := l(f)
			if err != nil || a == decisive {
				return a, err
			}
			return right(f)
		}
	}
	return left, nil
}

func (p *bbqlParser) primary() (predicate, error) {
	if p.peek().kind == "(" {
		p.next()
		inner, err := p.or()
		if err != nil {
			return nil, err
		}
		if p.next().kind != ")" {
			return nil, fmt.Errorf("missing closing parenthesis")
		}
		return inner, nil
	}
	field := p.next()
	if field.kind != "ident" {
		return nil, fmt.Errorf("expected a field name, got %q", field.text)
	}
	op := p.next()
	if op.kind != "op" || !validOps[op.text] {
		return nil, fmt.Errorf("expected an operator after %s", field.text)
	}
	lit := p.next()
	var want any
	switch {
	case lit.kind == "string":
		want = lit.text
	case lit.kind == "number":
		n, err := strconv.Atoi(lit.text)
		if err != nil {
			return nil, fmt.Errorf("invalid number %s", lit.text)
		}
		want = n
	case lit.kind == "ident" && (lit.text == "true" || lit.text == "false"):
		want = lit.text == "true"
	case lit.kind == "ident" && lit.text == "null":
		want = nil
	default:
		return nil, fmt.Errorf("expected a value after %s %s", field.text, op.text)
	}
	return func(f fieldFunc) (bool, error) {
		got, ok := f(field.text)
		if !ok {
			return false, fmt.Errorf("Invalid field name: %s", field.text)
		}
		return compare(got, op.text, want)
	}, nil
}

var validOps = map[string]bool{"=": true, "!=": true, "~": true, "!~": true, ">": true, ">=": true, "<": true, "<=": true}

func compare(got any, op string, want any) (bool, error) {
	if want == nil {
		isNull := got == nil || got == ""
		switch op {
		case "=":
			return isNull, nil
		case "!=":
			return !isNull, nil
		}
		return false, fmt.Errorf("operator %s cannot compare with null", op)
	}
	switch w := want.(type) {
	case bool:
		g, _ := got.(bool)
		switch op {
		case "=":
			return g == w, nil
		case "!=":
			return g != w, nil
		}
		return false, fmt.Errorf("operator %s cannot compare booleans", op)
	case int:
		g, _ := got.(int)
		return ordered(g, w, op)
	case string:
		g := fmt.Sprint(got)
		switch op {
		case "~":
			return strings.Contains(strings.ToLower(g), strings.ToLower(w)), nil
		case "!~":
			return !strings.Contains(strings.ToLower(g), strings.ToLower(w)), nil
		}
		return ordered(g, w, op)
	}
	return false, fmt.Errorf("unsupported value")
}

func ordered[T int | string](g, w T, op string) (bool, error) {
	switch op {
	case "=":
		return g == w, nil
	case "!=":
		return g != w, nil
	case ">":
		return g > w, nil
	case ">=":
		return g >= w, nil
	case "<":
		return g < w, nil
	case "<=":
		return g <= w, nil
	}
	return false, fmt.Errorf("operator %s needs a string", op)
}
