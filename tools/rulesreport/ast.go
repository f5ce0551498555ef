package rulesreport

import (
	"fmt"
	"sort"
	"strings"
)

// Expr is a boolean expression over field comparisons.
type Expr interface{ expr() }

// And is true when every operand is.
type And struct{ X []Expr }

// Or is true when any operand is.
type Or struct{ X []Expr }

// Not negates X.
type Not struct{ X Expr }

// Unknown is a condition the parser could not interpret (free text, an
// expression over computed values): it may be true or false.
type Unknown struct{ Why string }

// Operators of an Atom.
const (
	OpEq       = "=="     // exact, case-sensitive (EQL ==, in; ES|QL ==, IN)
	OpEqCI     = "==~"    // exact, case-insensitive (EQL in~)
	OpWild     = "wild"   // wildcard, case-sensitive (KQL field:value, EQL like, ES|QL LIKE)
	OpWildCI   = "wild~"  // wildcard, case-insensitive (EQL :, like~)
	OpRegex    = "regex"  // regular expression (EQL regex, ES|QL RLIKE)
	OpRegexCI  = "regex~" // case-insensitive regular expression
	OpExists   = "exists" // the field has a value (KQL field:*, EQL field != null)
	OpOpaque   = "opaque" // a range, a function, a comparison with another field: true or false when the fields exist
	OpRelative = "range"  // <, <=, >, >= with a literal
)

// Atom is one comparison: Field Op one of Values. Fields are the other
// fields an opaque atom reads (function arguments, a field compared with a
// field); the atom is false on a document that lacks any of them.
type Atom struct {
	ID     int // position in the query's atom list
	Field  string
	Op     string
	Values []string
	Fields []string
	Pos    int // byte offset in the query
	// Synthetic atoms are added by the report, not written in the query:
	// an EQL event category, a sequence's join key, a new_terms field.
	Synthetic string
}

func (And) expr()     {}
func (Or) expr()      {}
func (Not) expr()     {}
func (Unknown) expr() {}
func (*Atom) expr()   {}

// AllFields returns every field the atom reads.
func (a *Atom) AllFields() []string {
	var out []string
	if a.Field != "" {
		out = append(out, a.Field)
	}
	return append(out, a.Fields...)
}

// String renders the atom in a neutral notation (it is not the rule's text).
func (a *Atom) String() string {
	vals := make([]string, len(a.Values))
	for i, v := range a.Values {
		vals[i] = fmt.Sprintf("%q", v)
	}
	switch a.Op {
	case OpExists:
		return a.Field + " exists"
	case OpOpaque:
		return strings.Join(a.AllFields(), ", ") + " (compared)"
	}
	if len(vals) == 1 {
		return fmt.Sprintf("%s %s %s", a.Field, a.Op, vals[0])
	}
	return fmt.Sprintf("%s %s (%s)", a.Field, a.Op, strings.Join(vals, ", "))
}

// Step is one event query of a rule: a whole KQL or ES|QL query, or one
// EQL event query (a sequence has several).
type Step struct {
	Category string // EQL event category ("file", "process", "any"); "" for KQL and ES|QL
	Where    Expr
	// Until marks a sequence's until step: it need not match for the rule to fire.
	Until bool
	// JoinKeys are the sequence's "by" fields for this step.
	JoinKeys []string
}

// Query is a parsed rule query.
type Query struct {
	Steps []Step
	// Atoms lists every atom of every step in order; Atom.ID indexes it.
	Atoms []*Atom
	// Notes are the parser's approximations for this query (pipes ignored,
	// lineage treated as a field test, ...).
	Notes []string
}

// Parse parses a query in the given language (eql, kuery, esql).
func Parse(lang, q string) (*Query, error) {
	var (
		qu  *Query
		err error
	)
	switch lang {
	case "eql":
		qu, err = parseEQL(q)
	case "kuery":
		qu, err = parseKQL(q)
	case "esql":
		qu, err = parseESQL(q)
	default:
		return nil, fmt.Errorf("language %q is not parsed", lang)
	}
	if err != nil {
		return nil, err
	}
	qu.number()
	return qu, nil
}

// number assigns atom IDs in order and fills Atoms.
func (q *Query) number() {
	q.Atoms = q.Atoms[:0]
	for i := range q.Steps {
		walkAtoms(q.Steps[i].Where, func(a *Atom) {
			a.ID = len(q.Atoms)
			q.Atoms = append(q.Atoms, a)
		})
	}
}

func walkAtoms(e Expr, f func(*Atom)) {
	switch e := e.(type) {
	case And:
		for _, x := range e.X {
			walkAtoms(x, f)
		}
	case Or:
		for _, x := range e.X {
			walkAtoms(x, f)
		}
	case Not:
		walkAtoms(e.X, f)
	case *Atom:
		f(e)
	}
}

// Fields returns every field the query reads, sorted.
func (q *Query) Fields() []string {
	set := map[string]bool{}
	for _, a := range q.Atoms {
		for _, f := range a.AllFields() {
			set[f] = true
		}
	}
	out := make([]string, 0, len(set))
	for f := range set {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

// Categories returns the event categories the query reads: EQL step
// categories, else the values event.category is compared with outside a
// negation. "any" means no category constraint was found.
func (q *Query) Categories() []string {
	set := map[string]bool{}
	for _, s := range q.Steps {
		if s.Category != "" && s.Category != "any" {
			set[s.Category] = true
			continue
		}
		found := false
		positiveAtoms(s.Where, false, func(a *Atom) {
			if a.Field == "event.category" && a.Synthetic == "" && a.Op != OpExists && a.Op != OpOpaque {
				for _, v := range a.Values {
					set[strings.ToLower(strings.Trim(v, "*"))] = true
					found = true
				}
			}
		})
		if !found {
			set["any"] = true
		}
	}
	out := make([]string, 0, len(set))
	for c := range set {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

func positiveAtoms(e Expr, neg bool, f func(*Atom)) {
	switch e := e.(type) {
	case And:
		for _, x := range e.X {
			positiveAtoms(x, neg, f)
		}
	case Or:
		for _, x := range e.X {
			positiveAtoms(x, neg, f)
		}
	case Not:
		positiveAtoms(e.X, !neg, f)
	case *Atom:
		if !neg {
			f(e)
		}
	}
}

func and(x ...Expr) Expr {
	var out []Expr
	for _, e := range x {
		if a, ok := e.(And); ok {
			out = append(out, a.X...)
		} else if e != nil {
			out = append(out, e)
		}
	}
	if len(out) == 1 {
		return out[0]
	}
	return And{out}
}

func or(x ...Expr) Expr {
	var out []Expr
	for _, e := range x {
		if o, ok := e.(Or); ok {
			out = append(out, o.X...)
		} else if e != nil {
			out = append(out, e)
		}
	}
	if len(out) == 1 {
		return out[0]
	}
	return Or{out}
}

// parser is the shared token cursor of the three parsers.
type parser struct {
	toks []Token
	i    int
	src  string
}

func (p *parser) peek() Token { return p.toks[p.i] }
func (p *parser) peekN(n int) Token {
	if p.i+n < len(p.toks) {
		return p.toks[p.i+n]
	}
	return p.toks[len(p.toks)-1]
}
func (p *parser) next() Token {
	t := p.toks[p.i]
	if t.Kind != EOF {
		p.i++
	}
	return t
}

// isKw reports whether the next token is the keyword kw (case-insensitive).
func (p *parser) isKw(kw string) bool {
	t := p.peek()
	return t.Kind == Ident && strings.EqualFold(t.Text, kw)
}

func (p *parser) isOp(op string) bool {
	t := p.peek()
	return t.Kind == Op && t.Text == op
}

func (p *parser) expectOp(op string) error {
	t := p.next()
	if t.Kind != Op || t.Text != op {
		return p.errf(t, "expected %q", op)
	}
	return nil
}

func (p *parser) errf(t Token, format string, args ...any) error {
	what := t.Text
	if t.Kind == EOF {
		what = "end of query"
	}
	return fmt.Errorf("offset %d near %q: %s", t.Pos, what, fmt.Sprintf(format, args...))
}
