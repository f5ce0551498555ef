package rulesreport

import (
	"strings"
)

// maxDepth bounds the parsers' recursion (fuzzed input nests deeply).
const maxDepth = 200

// val is an operand while parsing an EQL or ES|QL expression: a boolean
// expression, a field, a literal, or an opaque value computed from fields.
type val struct {
	expr   Expr     // set when the operand is boolean
	field  string   // a bare field
	lit    *string  // a literal (strings unquoted; numbers, true, false as written)
	isNull bool     // the null literal
	fields []string // fields an opaque value reads (function arguments, arithmetic)
	opaque bool     // a function call or arithmetic
	pos    int
}

// exprParser parses EQL expressions, and ES|QL ones when esql is set.
type exprParser struct {
	parser
	esql     bool
	computed map[string]bool // ES|QL names defined by EVAL, STATS, ...
	notes    map[string]bool
	depth    int
}

func (p *exprParser) note(s string) {
	if p.notes == nil {
		p.notes = map[string]bool{}
	}
	p.notes[s] = true
}

func (p *exprParser) enter() error {
	p.depth++
	if p.depth > maxDepth {
		return p.errf(p.peek(), "nesting deeper than %d", maxDepth)
	}
	return nil
}

func (p *exprParser) leave() { p.depth-- }

func (p *exprParser) parseOr() (val, error) {
	if err := p.enter(); err != nil {
		return val{}, err
	}
	defer p.leave()
	return p.parseJoined("or", p.parseAnd, or)
}

func (p *exprParser) parseAnd() (val, error) {
	return p.parseJoined("and", p.parseNot, and)
}

// parseJoined parses operand (kw operand)*: one operand as it is, two or
// more joined with join (or, and) as booleans.
func (p *exprParser) parseJoined(kw string, operand func() (val, error), join func(...Expr) Expr) (val, error) {
	l, err := operand()
	if err != nil {
		return l, err
	}
	if !p.isKw(kw) {
		return l, nil
	}
	xs := []Expr{p.toBool(l)}
	for p.isKw(kw) {
		p.next()
		r, err := operand()
		if err != nil {
			return r, err
		}
		xs = append(xs, p.toBool(r))
	}
	return val{expr: join(xs...), pos: l.pos}, nil
}

func (p *exprParser) parseNot() (val, error) {
	if p.isKw("not") {
		t := p.next()
		if err := p.enter(); err != nil {
			return val{}, err
		}
		defer p.leave()
		x, err := p.parseNot()
		if err != nil {
			return x, err
		}
		return val{expr: Not{p.toBool(x)}, pos: t.Pos}, nil
	}
	return p.parseCmp()
}

// parseCmp parses an operand and the comparison that may follow it.
func (p *exprParser) parseCmp() (val, error) {
	l, err := p.parseArith()
	if err != nil {
		return l, err
	}
	t := p.peek()
	var op string
	negate := false
	switch {
	case t.Kind == Op && (t.Text == "==" || t.Text == "!=" || t.Text == "<" || t.Text == "<=" || t.Text == ">" || t.Text == ">=" || t.Text == ":"):
		op = t.Text
		p.next()
	case t.Kind == Op && t.Text == "=" && p.esql:
		op = "=="
		p.next()
	case t.Kind == Ident:
		kw := strings.ToLower(t.Text)
		if kw == "not" {
			n := p.peekN(1)
			if n.Kind == Ident {
				switch strings.ToLower(n.Text) {
				case "in", "in~", "like", "like~", "regex", "regex~", "rlike":
					p.next()
					negate = true
					t = p.peek()
					kw = strings.ToLower(t.Text)
				}
			}
		}
		switch kw {
		case "in", "in~", "like", "like~", "regex", "regex~", "rlike":
			op = kw
			p.next()
		case "is":
			if !p.esql {
				return l, nil
			}
			p.next()
			isNot := false
			if p.isKw("not") {
				p.next()
				isNot = true
			}
			if !p.isKw("null") {
				return l, p.errf(p.peek(), "expected null after IS")
			}
			p.next()
			a := p.atomFor(l, OpExists, nil)
			if isNot {
				return val{expr: a, pos: l.pos}, nil
			}
			return val{expr: Not{a}, pos: l.pos}, nil
		default:
			return l, nil
		}
	default:
		return l, nil
	}
	var rs []val
	if p.isOp("(") && (op == "in" || op == "in~" || op == ":" || op == "like" || op == "like~" || op == "regex" || op == "regex~" || op == "rlike") {
		p.next()
		for !p.isOp(")") {
			r, err := p.parseArith()
			if err != nil {
				return r, err
			}
			rs = append(rs, r)
			if p.isOp(",") {
				p.next()
				continue
			}
			if !p.isOp(")") {
				return r, p.errf(p.peek(), "expected ',' or ')' in a list")
			}
		}
		p.next()
	} else {
		r, err := p.parseArith()
		if err != nil {
			return r, err
		}
		rs = append(rs, r)
	}
	e := p.compare(l, op, rs)
	if negate {
		e = Not{e}
	}
	return val{expr: e, pos: l.pos}, nil
}

// compare builds the expression for l op rs.
func (p *exprParser) compare(l val, op string, rs []val) Expr {
	allLit := true
	for _, r := range rs {
		if r.lit == nil && !r.isNull {
			allLit = false
		}
	}
	// literal == field: swap so the field is on the left.
	if l.field == "" && (l.lit != nil || l.isNull) && len(rs) == 1 && rs[0].field != "" {
		switch op {
		case "==", "!=", ":":
			l, rs = rs[0], []val{l}
			allLit = true
		}
	}
	if l.field == "" || !allLit {
		return p.opaque(append([]val{l}, rs...))
	}
	var vals []string
	hasNull := false
	for _, r := range rs {
		if r.isNull {
			hasNull = true
			continue
		}
		vals = append(vals, *r.lit)
	}
	if hasNull && len(vals) == 0 {
		switch op {
		case "==":
			return Not{p.atomFor(l, OpExists, nil)}
		case "!=":
			return p.atomFor(l, OpExists, nil)
		}
		return p.opaque([]val{l})
	}
	switch op {
	case "==":
		return p.atomFor(l, OpEq, vals)
	case "!=":
		return Not{p.atomFor(l, OpEq, vals)}
	case ":":
		if p.esql { // ES|QL's match operator: full-text, approximated as a case-insensitive match
			p.note("ES|QL's `:` match operator is treated as a case-insensitive wildcard comparison")
		}
		return p.atomFor(l, OpWildCI, vals)
	case "in":
		return p.atomFor(l, OpEq, vals)
	case "in~":
		return p.atomFor(l, OpEqCI, vals)
	case "like":
		return p.atomFor(l, OpWild, vals)
	case "like~":
		return p.atomFor(l, OpWildCI, vals)
	case "regex", "rlike":
		return p.atomFor(l, OpRegex, vals)
	case "regex~":
		return p.atomFor(l, OpRegexCI, vals)
	case "<", "<=", ">", ">=":
		return p.atomFor(l, OpRelative, vals)
	}
	return p.opaque(append([]val{l}, rs...))
}

// atomFor returns an atom on l's field, or Unknown when the field is an
// ES|QL computed name.
func (p *exprParser) atomFor(l val, op string, vals []string) Expr {
	if p.computed[l.field] {
		return Unknown{"computed value " + l.field}
	}
	return &Atom{Field: l.field, Op: op, Values: vals, Pos: l.pos}
}

// opaque is an atom that is true or false when every field it reads exists.
func (p *exprParser) opaque(vs []val) Expr {
	var fields []string
	for _, v := range vs {
		if v.field != "" {
			fields = append(fields, v.field)
		}
		fields = append(fields, v.fields...)
		if v.expr != nil {
			// a boolean operand inside a comparison: keep its atoms' fields
			walkAtoms(v.expr, func(a *Atom) { fields = append(fields, a.AllFields()...) })
		}
	}
	var src []string
	for _, f := range fields {
		if !p.computed[f] {
			src = append(src, f)
		}
	}
	src = dedup(src)
	if len(src) == 0 {
		return Unknown{"expression without source fields"}
	}
	pos := 0
	if len(vs) > 0 {
		pos = vs[0].pos
	}
	return &Atom{Field: src[0], Fields: src[1:], Op: OpOpaque, Pos: pos}
}

func dedup(xs []string) []string {
	seen := map[string]bool{}
	out := xs[:0]
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// toBool turns an operand used as a condition into an expression.
func (p *exprParser) toBool(v val) Expr {
	switch {
	case v.expr != nil:
		return v.expr
	case v.lit != nil:
		switch strings.ToLower(*v.lit) {
		case "true":
			return And{}
		case "false":
			return Or{}
		}
		return Unknown{"literal used as a condition"}
	case v.isNull:
		return Or{}
	}
	return p.opaque([]val{v})
}

// parseArith parses additive and multiplicative arithmetic; the result of
// an operation is opaque.
func (p *exprParser) parseArith() (val, error) {
	l, err := p.parseUnary()
	if err != nil {
		return l, err
	}
	for p.isOp("+") || p.isOp("-") || p.isOp("*") || p.isOp("/") || p.isOp("%") {
		p.next()
		r, err := p.parseUnary()
		if err != nil {
			return r, err
		}
		l = val{opaque: true, fields: opFields(l, r), pos: l.pos}
	}
	return l, nil
}

func opFields(vs ...val) []string {
	var out []string
	for _, v := range vs {
		if v.field != "" {
			out = append(out, v.field)
		}
		out = append(out, v.fields...)
		if v.expr != nil {
			walkAtoms(v.expr, func(a *Atom) { out = append(out, a.AllFields()...) })
		}
	}
	return out
}

func (p *exprParser) parseUnary() (val, error) {
	if p.isOp("-") || p.isOp("+") {
		p.next()
		if err := p.enter(); err != nil {
			return val{}, err
		}
		defer p.leave()
		v, err := p.parseUnary()
		if err != nil {
			return v, err
		}
		if v.lit != nil {
			s := "-" + *v.lit
			v.lit = &s
		}
		return v, nil
	}
	return p.parsePrimary()
}

func (p *exprParser) parsePrimary() (val, error) {
	t := p.peek()
	switch t.Kind {
	case String, Number:
		p.next()
		s := t.Text
		if t.Kind == Number && p.esql && p.peek().Kind == Ident && esqlUnits[strings.ToLower(p.peek().Text)] {
			s += " " + p.next().Text // an ES|QL time span: 1 hour
		}
		return p.postfix(val{lit: &s, pos: t.Pos})
	case Op:
		if t.Text == "(" {
			p.next()
			v, err := p.parseOr()
			if err != nil {
				return v, err
			}
			if err := p.expectOp(")"); err != nil {
				return v, err
			}
			return v, nil
		}
		return val{}, p.errf(t, "unexpected operator")
	case Ident:
		lower := strings.ToLower(t.Text)
		switch lower {
		case "true", "false":
			p.next()
			return val{lit: &lower, pos: t.Pos}, nil
		case "null":
			p.next()
			return val{isNull: true, pos: t.Pos}, nil
		case "descendant", "child", "event":
			if !p.esql && p.peekN(1).Kind == Ident && strings.EqualFold(p.peekN(1).Text, "of") {
				return p.parseLineage()
			}
		}
		p.next()
		if p.isOp("(") { // function call
			p.next()
			var fields []string
			for !p.isOp(")") {
				if p.isOp("{") { // an ES|QL function's options map
					p.skipBraces()
					if p.isOp(",") {
						p.next()
					}
					continue
				}
				a, err := p.parseOr()
				if err != nil {
					return a, err
				}
				fields = append(fields, opFields(a)...)
				if p.isOp(",") {
					p.next()
					continue
				}
				if !p.isOp(")") {
					return a, p.errf(p.peek(), "expected ',' or ')' in a call")
				}
			}
			p.next()
			return p.postfix(val{opaque: true, fields: fields, pos: t.Pos})
		}
		if p.esql && p.computed[t.Text] {
			return p.postfix(val{opaque: true, pos: t.Pos})
		}
		return p.postfix(val{field: t.Text, pos: t.Pos})
	}
	return val{}, p.errf(t, "unexpected token")
}

var esqlUnits = map[string]bool{
	"millisecond": true, "milliseconds": true, "ms": true, "second": true, "seconds": true, "sec": true, "s": true,
	"minute": true, "minutes": true, "min": true, "hour": true, "hours": true, "h": true, "day": true, "days": true, "d": true,
	"week": true, "weeks": true, "w": true, "month": true, "months": true, "mo": true, "quarter": true, "quarters": true, "q": true,
	"year": true, "years": true, "yr": true, "y": true,
}

// postfix consumes an ES|QL cast (value::TYPE), which leaves the operand as it is.
func (p *exprParser) postfix(v val) (val, error) {
	for p.esql && p.isOp(":") && p.peekN(1).Kind == Op && p.peekN(1).Text == ":" {
		p.next()
		p.next()
		if t := p.next(); t.Kind != Ident {
			return v, p.errf(t, "expected a type after ::")
		}
	}
	return v, nil
}

// skipBraces skips a balanced { ... }.
func (p *exprParser) skipBraces() {
	depth := 0
	for {
		t := p.next()
		if t.Kind == EOF {
			return
		}
		if t.Kind == Op && t.Text == "{" {
			depth++
		}
		if t.Kind == Op && t.Text == "}" {
			depth--
			if depth <= 0 {
				return
			}
		}
	}
}

// parseLineage parses "descendant of [q]", "child of [q]" or "event of
// [q]". The relation needs the ancestor's event to match q; it is
// approximated as: q can match a process event and the document carries
// process.parent.entity_id.
func (p *exprParser) parseLineage() (val, error) {
	t := p.next()
	p.next() // of
	if err := p.expectOp("["); err != nil {
		return val{}, err
	}
	cat, where, err := p.parseEventQuery()
	if err != nil {
		return val{}, err
	}
	if err := p.expectOp("]"); err != nil {
		return val{}, err
	}
	p.note("`descendant of`, `child of` and `event of` are approximated: the inner query must be satisfiable on the same document, which must carry process.parent.entity_id")
	var inner []Expr
	if cat != "" && cat != "any" {
		inner = append(inner, &Atom{Field: "event.category", Op: OpEq, Values: []string{cat}, Pos: t.Pos, Synthetic: "lineage category"})
	}
	inner = append(inner, where, &Atom{Field: "process.parent.entity_id", Op: OpExists, Pos: t.Pos, Synthetic: "lineage"})
	return val{expr: and(inner...), pos: t.Pos}, nil
}

// parseEventQuery parses "category where expr".
func (p *exprParser) parseEventQuery() (string, Expr, error) {
	t := p.next()
	if t.Kind != Ident && t.Kind != String {
		return "", nil, p.errf(t, "expected an event category")
	}
	cat := strings.ToLower(t.Text)
	if !p.isKw("where") {
		return "", nil, p.errf(p.peek(), "expected where")
	}
	p.next()
	v, err := p.parseOr()
	if err != nil {
		return "", nil, err
	}
	return cat, p.toBool(v), nil
}

// parseEQL parses an EQL query: an event query, a sequence or a sample,
// then pipes (which are ignored).
func parseEQL(q string) (*Query, error) {
	toks, err := LexEQL(q)
	if err != nil {
		return nil, err
	}
	p := &exprParser{parser: parser{toks: toks, src: q}}
	out := &Query{}
	switch {
	case p.isKw("sequence") || p.isKw("sample"):
		isSample := p.isKw("sample")
		p.next()
		var keys []string
		for p.isKw("by") || p.isKw("with") {
			if p.isKw("by") {
				p.next()
				ks, err := p.parseFieldList()
				if err != nil {
					return nil, err
				}
				keys = append(keys, ks...)
				continue
			}
			p.next() // with maxspan=5m
			if err := p.skipSetting(); err != nil {
				return nil, err
			}
		}
		for p.isOp("[") || p.isOp("!") || p.isKw("until") {
			st := Step{}
			if p.isKw("until") {
				p.next()
				st.Until = true
			}
			if p.isOp("!") { // a missing-event step
				p.next()
				st.Until = true
			}
			if err := p.expectOp("["); err != nil {
				return nil, err
			}
			cat, where, err := p.parseEventQuery()
			if err != nil {
				return nil, err
			}
			if err := p.expectOp("]"); err != nil {
				return nil, err
			}
			st.Category, st.Where = cat, where
			st.JoinKeys = append(st.JoinKeys, keys...)
			for p.isKw("by") || p.isKw("with") {
				if p.isKw("by") {
					p.next()
					ks, err := p.parseFieldList()
					if err != nil {
						return nil, err
					}
					st.JoinKeys = append(st.JoinKeys, ks...)
					continue
				}
				p.next() // with runs=3
				if err := p.skipSetting(); err != nil {
					return nil, err
				}
			}
			out.Steps = append(out.Steps, st)
		}
		if len(out.Steps) == 0 {
			return nil, p.errf(p.peek(), "expected a [ step ]")
		}
		if isSample {
			p.note("`sample` is treated like a sequence whose steps all must match")
		}
	default:
		cat, where, err := p.parseEventQuery()
		if err != nil {
			return nil, err
		}
		out.Steps = []Step{{Category: cat, Where: where}}
	}
	if p.isOp("|") {
		p.note("pipes (`| head`, `| unique`, `| filter`, ...) are ignored")
		for p.peek().Kind != EOF {
			p.next()
		}
	}
	if t := p.peek(); t.Kind != EOF {
		return nil, p.errf(t, "unexpected text after the query")
	}
	out.Notes = sortedKeys(p.notes)
	return out, nil
}

// parseFieldList parses "f1, f2, ...".
func (p *exprParser) parseFieldList() ([]string, error) {
	var out []string
	for {
		v, err := p.parseArith()
		if err != nil {
			return nil, err
		}
		out = append(out, opFields(v)...)
		if !p.isOp(",") {
			return out, nil
		}
		p.next()
	}
}

// skipSetting skips "name = value" after with.
func (p *exprParser) skipSetting() error {
	if t := p.next(); t.Kind != Ident {
		return p.errf(t, "expected a setting name after with")
	}
	if err := p.expectOp("="); err != nil {
		return err
	}
	if t := p.next(); t.Kind != Number && t.Kind != Ident && t.Kind != String {
		return p.errf(t, "expected a setting value")
	}
	return nil
}
