package rulesreport

import (
	"regexp"
	"sort"
	"strings"
)

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

type kqlParser struct {
	parser
	depth int
	notes map[string]bool
}

func (p *kqlParser) enter() error {
	p.depth++
	if p.depth > maxDepth {
		return p.errf(p.peek(), "nesting deeper than %d", maxDepth)
	}
	return nil
}

// parseKQL parses a KQL query into one step.
func parseKQL(q string) (*Query, error) {
	toks, err := LexKQL(q)
	if err != nil {
		return nil, err
	}
	p := &kqlParser{parser: parser{toks: toks, src: q}, notes: map[string]bool{}}
	if p.peek().Kind == EOF {
		return &Query{Steps: []Step{{Where: And{}}}}, nil
	}
	e, err := p.or("")
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.Kind != EOF {
		return nil, p.errf(t, "unexpected text after the query")
	}
	return &Query{Steps: []Step{{Where: e}}, Notes: sortedKeys(p.notes)}, nil
}

// or, and, not parse the boolean structure; prefix is the enclosing nested
// field (field:{ ... }).
func (p *kqlParser) or(prefix string) (Expr, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	l, err := p.and(prefix)
	if err != nil {
		return nil, err
	}
	xs := []Expr{l}
	for p.isKw("or") {
		p.next()
		r, err := p.and(prefix)
		if err != nil {
			return nil, err
		}
		xs = append(xs, r)
	}
	return or(xs...), nil
}

func (p *kqlParser) and(prefix string) (Expr, error) {
	l, err := p.not(prefix)
	if err != nil {
		return nil, err
	}
	xs := []Expr{l}
	for p.isKw("and") {
		p.next()
		r, err := p.not(prefix)
		if err != nil {
			return nil, err
		}
		xs = append(xs, r)
	}
	return and(xs...), nil
}

func (p *kqlParser) not(prefix string) (Expr, error) {
	if p.isKw("not") {
		p.next()
		if err := p.enter(); err != nil {
			return nil, err
		}
		defer func() { p.depth-- }()
		x, err := p.not(prefix)
		if err != nil {
			return nil, err
		}
		return Not{x}, nil
	}
	return p.primary(prefix)
}

var kqlFieldRe = regexp.MustCompile(`^[A-Za-z_@][A-Za-z0-9_.@*/-]*$`)

func (p *kqlParser) primary(prefix string) (Expr, error) {
	t := p.peek()
	if t.Kind == Op && t.Text == "(" {
		p.next()
		e, err := p.or(prefix)
		if err != nil {
			return nil, err
		}
		return e, p.expectOp(")")
	}
	if t.Kind != Ident && t.Kind != String {
		return nil, p.errf(t, "expected a field or a value")
	}
	n := p.peekN(1)
	if t.Kind == Ident && n.Kind == Op && kqlFieldRe.MatchString(t.Text) {
		field := t.Text
		if prefix != "" {
			field = prefix + "." + field
		}
		switch n.Text {
		case ":":
			p.next()
			p.next()
			if p.isOp("{") { // nested field query
				p.next()
				e, err := p.or(field)
				if err != nil {
					return nil, err
				}
				return e, p.expectOp("}")
			}
			return p.valueOr(field, t.Pos)
		case "<", "<=", ">", ">=":
			p.next()
			p.next()
			v := p.next()
			if v.Kind != Ident && v.Kind != String {
				return nil, p.errf(v, "expected a value after %s", n.Text)
			}
			return &Atom{Field: field, Op: OpRelative, Values: []string{v.Text}, Pos: t.Pos}, nil
		}
	}
	// A value without a field: free text, matched against default fields.
	p.next()
	p.notes["free-text terms (a value without a field) are treated as unknown"] = true
	return Unknown{"free text"}, nil
}

// valueOr parses the value side of field:value, including (a or b and not c).
func (p *kqlParser) valueOr(field string, pos int) (Expr, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	if p.isOp("(") {
		p.next()
		e, err := p.valueBool(field, pos)
		if err != nil {
			return nil, err
		}
		return e, p.expectOp(")")
	}
	return p.value(field, pos)
}

func (p *kqlParser) valueBool(field string, pos int) (Expr, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	andTerm := func() (Expr, error) {
		var xs []Expr
		for {
			neg := 0
			for p.isKw("not") {
				p.next()
				neg++
			}
			x, err := p.valueOr(field, pos)
			if err != nil {
				return nil, err
			}
			for ; neg > 0; neg-- {
				x = Not{x}
			}
			xs = append(xs, x)
			if !p.isKw("and") {
				return and(xs...), nil
			}
			p.next()
		}
	}
	l, err := andTerm()
	if err != nil {
		return nil, err
	}
	xs := []Expr{l}
	for p.isKw("or") {
		p.next()
		r, err := andTerm()
		if err != nil {
			return nil, err
		}
		xs = append(xs, r)
	}
	return or(xs...), nil
}

func (p *kqlParser) value(field string, pos int) (Expr, error) {
	t := p.next()
	switch t.Kind {
	case String:
		return &Atom{Field: field, Op: OpEq, Values: []string{t.Text}, Pos: pos}, nil
	case Ident:
		if l := strings.ToLower(t.Text); l == "and" || l == "or" || l == "not" {
			return nil, p.errf(t, "expected a value, not %q", t.Text)
		}
		// Consecutive bare words are one value ("*S3 Browser*").
		for p.peek().Kind == Ident && !p.isKw("or") && !p.isKw("and") && !p.isKw("not") {
			w := p.next()
			t.Text += " " + w.Text
			t.Wild = t.Wild || w.Wild
		}
		if t.Text == "*" {
			return &Atom{Field: field, Op: OpExists, Pos: pos}, nil
		}
		if t.Wild {
			return &Atom{Field: field, Op: OpWild, Values: []string{t.Text}, Pos: pos}, nil
		}
		return &Atom{Field: field, Op: OpEq, Values: []string{t.Text}, Pos: pos}, nil
	}
	return nil, p.errf(t, "expected a value")
}

// esqlFromRe finds an ES|QL query's FROM source list.
var esqlFromRe = regexp.MustCompile(`(?is)^\s*from\s+(.*?)(?:\s+metadata\s.*)?$`)

// esqlFrom returns the index patterns of an ES|QL query's FROM command.
func esqlFrom(q string) []string {
	first := q
	if i := strings.IndexByte(q, '|'); i >= 0 {
		first = q[:i]
	}
	m := esqlFromRe.FindStringSubmatch(first)
	if m == nil {
		return nil
	}
	var out []string
	for _, s := range strings.Split(m[1], ",") {
		s = strings.Trim(strings.TrimSpace(s), `"`)
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}
