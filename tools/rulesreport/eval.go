package rulesreport

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Truth is an abstract truth value: the set of values an expression can
// take over the documents of a class.
type Truth uint8

const (
	CanTrue  Truth = 1 << 0
	CanFalse Truth = 1 << 1
	Both           = CanTrue | CanFalse
)

// evaluator evaluates expressions against classes; relaxed atoms are
// treated as unknown (Both).
type evaluator struct {
	relax   map[int]bool
	regexps map[string]*regexp.Regexp
}

func (ev *evaluator) eval(e Expr, c *Class) Truth {
	switch e := e.(type) {
	case And:
		t := CanTrue
		for _, x := range e.X {
			xt := ev.eval(x, c)
			if xt&CanTrue == 0 {
				t &^= CanTrue
			}
			if xt&CanFalse != 0 {
				t |= CanFalse
			}
			if t == CanFalse {
				return t
			}
		}
		return t
	case Or:
		t := CanFalse
		for _, x := range e.X {
			xt := ev.eval(x, c)
			if xt&CanFalse == 0 {
				t &^= CanFalse
			}
			if xt&CanTrue != 0 {
				t |= CanTrue
			}
			if t == CanTrue {
				return t
			}
		}
		return t
	case Not:
		t := ev.eval(e.X, c)
		return (t&CanTrue)<<1 | (t&CanFalse)>>1
	case Unknown:
		return Both
	case *Atom:
		if ev.relax[e.ID] {
			return Both
		}
		return ev.atom(e, c)
	}
	return Both
}

// atom decides one comparison on a class.
func (ev *evaluator) atom(a *Atom, c *Class) Truth {
	partial := false
	for _, f := range a.AllFields() {
		n := c.Fields[f]
		if n == 0 {
			return CanFalse // a missing field compares false (and its negation is true)
		}
		if n < c.Docs {
			partial = true
		}
	}
	var t Truth
	switch {
	case a.Op == OpExists:
		t = CanTrue
	case isVocab(a.Field) && a.Op != OpOpaque && a.Op != OpRelative:
		m, ok := ev.matchAny(a, c.Vocab[a.Field])
		switch {
		case !ok:
			t = Both
		case m:
			t = CanTrue
		default:
			t = CanFalse
		}
	default:
		t = Both
	}
	if partial {
		t |= CanFalse
	}
	return t
}

// matchAny reports whether any of values matches any of the atom's
// patterns; ok is false when that cannot be decided (a bad regexp).
func (ev *evaluator) matchAny(a *Atom, values []string) (match, ok bool) {
	for _, v := range values {
		for _, pat := range a.Values {
			m, ok := ev.match(a.Op, pat, v)
			if !ok {
				return false, false
			}
			if m {
				return true, true
			}
		}
	}
	return false, true
}

func (ev *evaluator) match(op, pat, v string) (bool, bool) {
	switch op {
	case OpEq:
		return v == pat, true
	case OpEqCI:
		return strings.EqualFold(v, pat), true
	case OpWild:
		return globMatch(pat, v), true
	case OpWildCI:
		return globMatch(strings.ToLower(pat), strings.ToLower(v)), true
	case OpRegex, OpRegexCI:
		key := op + "\x00" + pat
		re, seen := ev.regexps[key]
		if !seen {
			flags := ""
			if op == OpRegexCI {
				flags = "(?i)"
			}
			re, _ = regexp.Compile(flags + "^(?:" + pat + ")$")
			if ev.regexps == nil {
				ev.regexps = map[string]*regexp.Regexp{}
			}
			ev.regexps[key] = re
		}
		if re == nil {
			return false, false
		}
		return re.MatchString(v), true
	}
	return false, false
}

// globMatch matches a wildcard pattern (* and ?) against s.
func globMatch(pat, s string) bool {
	p, t := 0, 0
	star, mark := -1, 0
	for t < len(s) {
		switch {
		case p < len(pat) && (pat[p] == '?' || pat[p] == s[t]):
			p++
			t++
		case p < len(pat) && pat[p] == '*':
			star, mark = p, t
			p++
		case star >= 0:
			p = star + 1
			mark++
			t = mark
		default:
			return false
		}
	}
	for p < len(pat) && pat[p] == '*' {
		p++
	}
	return p == len(pat)
}

// Verdict is the outcome for one rule.
type Verdict struct {
	Rule       *Rule
	Query      *Query
	ParseError error
	Covered    bool
	// Reasons say, for a rule that is not covered, which fields or values
	// Fileward lacks (one entry per blocking condition, deduplicated).
	Reasons []Reason
	// Inert lists fields read only inside exclusions (negations) that
	// Fileward never emits: the exclusion never applies.
	Inert []string
	// Meaning lists notes from failed meaning checks on fields the rule reads.
	Meaning []string
	// IngestedMissing is set when the rule applies its look-back to
	// event.ingested and no document carries it.
	IngestedMissing bool
}

// Reason is one blocking condition.
type Reason struct {
	Kind  string // "network", "field", "value", "combination", "parse", "language"
	Field string
	Text  string
}

// Analyze evaluates a rule against the inventory.
func Analyze(r *Rule, inv *Inventory) *Verdict {
	v := &Verdict{Rule: r}
	if !r.Supported() {
		v.ParseError = fmt.Errorf("language %q is not parsed", r.Language)
		v.Reasons = []Reason{{Kind: "language", Text: "query language " + r.Language + " is not parsed"}}
		return v
	}
	q, err := Parse(r.Language, r.Query)
	if err != nil {
		v.ParseError = err
		v.Reasons = []Reason{{Kind: "parse", Text: "query not parsed: " + err.Error()}}
		return v
	}
	v.Query = q
	full := withSynthetic(q, r)
	v.IngestedMissing = r.TimestampOverride == "event.ingested" && !inv.Has("event.ingested")
	v.Inert = inertFields(full, inv)

	ev := &evaluator{}
	sat := func(relax map[int]bool) bool {
		ev.relax = relax
		for _, st := range full.Steps {
			if st.Until {
				continue
			}
			ok := false
			for _, c := range inv.Classes {
				if ev.eval(st.Where, c)&CanTrue != 0 {
					ok = true
					break
				}
			}
			if !ok {
				return false
			}
		}
		return true
	}
	checks, join := inv.Meaning()
	fields := map[string]bool{}
	for _, f := range full.Fields() {
		fields[f] = true
	}
	for _, c := range checks {
		if !c.Passed && fields[c.Field] && c.Field != "process.entity_id" {
			v.Meaning = append(v.Meaning, c.Detail)
		}
	}
	joins := joinsStartAndFile(full)
	if sat(nil) {
		switch {
		case joins && join.Starts > 0 && join.Joined == 0:
			v.Reasons = []Reason{{Kind: "join", Field: "process.entity_id", Text: "`process.entity_id` of a start event never matches its process's file events (the sequence cannot join)"}}
		case joins && join.Mismatched > 0:
			v.Covered = true
			v.Meaning = append(v.Meaning, fmt.Sprintf("sequence join by `process.entity_id`: %d file events carry another entity_id than their process's start event", join.Mismatched))
		default:
			v.Covered = true
		}
		return v
	}
	relax := map[int]bool{}
	for _, a := range full.Atoms {
		relax[a.ID] = true
	}
	if !sat(relax) {
		v.Reasons = []Reason{{Kind: "combination", Text: "no Fileward document class at all"}}
		return v
	}
	// Greedy minimisation: un-relax every atom whose relaxation is not
	// needed. Atoms tried first are kept strict when possible, i.e. blamed
	// last: the OS a rule names, then the event category, then the rest.
	order := append([]*Atom(nil), full.Atoms...)
	rank := func(a *Atom) int {
		switch {
		case a.Field == "host.os.type":
			return 0
		case a.Field == "event.category":
			return 1
		}
		return 2
	}
	sort.SliceStable(order, func(i, j int) bool { return rank(order[i]) < rank(order[j]) })
	for _, a := range order {
		delete(relax, a.ID)
		if !sat(relax) {
			relax[a.ID] = true
		}
	}
	seen := map[string]bool{}
	for _, a := range full.Atoms {
		if !relax[a.ID] {
			continue
		}
		rs := explain(a, inv)
		for _, x := range rs {
			if !seen[x.Text] {
				seen[x.Text] = true
				v.Reasons = append(v.Reasons, x)
			}
		}
	}
	return v
}

// joinsStartAndFile reports whether the query is a sequence joined by
// process.entity_id with a required process step and a required file step.
func joinsStartAndFile(q *Query) bool {
	proc, file := false, false
	for _, st := range q.Steps {
		if st.Until {
			continue
		}
		keyed := false
		for _, k := range st.JoinKeys {
			keyed = keyed || k == "process.entity_id"
		}
		if !keyed {
			continue
		}
		proc = proc || st.Category == "process"
		file = file || st.Category == "file"
	}
	return proc && file
}

// networkFields are prefixes of fields only network events carry.
var networkFields = []string{"destination.", "source.", "network.", "dns.", "url.", "http.", "tls."}

func isNetworkField(f string) bool {
	for _, p := range networkFields {
		if strings.HasPrefix(f, p) {
			return true
		}
	}
	return false
}

// explain says why one blocking atom cannot be satisfied.
func explain(a *Atom, inv *Inventory) []Reason {
	var out []Reason
	for _, f := range a.AllFields() {
		if !inv.Has(f) {
			kind := "field"
			if isNetworkField(f) {
				kind = "network"
			}
			out = append(out, Reason{Kind: kind, Field: f, Text: "missing field `" + f + "`"})
		}
	}
	if len(out) > 0 {
		return out
	}
	if a.Field == "event.category" && a.Op != OpOpaque && a.Op != OpExists {
		for _, val := range a.Values {
			if strings.EqualFold(val, "network") {
				return []Reason{{Kind: "network", Field: a.Field, Text: "network events (`event.category: network`)"}}
			}
		}
	}
	if isVocab(a.Field) && a.Op != OpOpaque && a.Op != OpRelative && a.Op != OpExists {
		ev := &evaluator{}
		var missing []string
		for _, val := range a.Values {
			emitted := false
			for _, emittedVal := range inv.Values[a.Field] {
				if m, _ := ev.match(a.Op, val, emittedVal); m {
					emitted = true
					break
				}
			}
			if !emitted {
				missing = append(missing, fmt.Sprintf("%q", val))
			}
		}
		if len(missing) == len(a.Values) {
			sort.Strings(missing)
			return []Reason{{Kind: "value", Field: a.Field, Text: fmt.Sprintf("`%s` value %s never emitted", a.Field, strings.Join(missing, " / "))}}
		}
		return []Reason{{Kind: "combination", Field: a.Field, Text: fmt.Sprintf("`%s` %s not emitted together with the rule's other conditions", a.Field, valueList(a))}}
	}
	what := "`" + strings.Join(a.AllFields(), "`, `") + "`"
	if a.Synthetic != "" {
		what += " (" + a.Synthetic + ")"
	}
	return []Reason{{Kind: "combination", Field: a.Field, Text: what + " not on the documents the rule's other conditions select"}}
}

func valueList(a *Atom) string {
	vs := make([]string, len(a.Values))
	for i, v := range a.Values {
		vs[i] = fmt.Sprintf("%q", v)
	}
	return strings.Join(vs, " / ")
}

// withSynthetic returns the query with the conditions the rule implies
// added to each step: the EQL event category, the sequence's join keys,
// and the new_terms/threshold group-by fields (on the first step).
func withSynthetic(q *Query, r *Rule) *Query {
	out := &Query{Notes: q.Notes}
	for i, st := range q.Steps {
		var xs []Expr
		if st.Category != "" && st.Category != "any" {
			xs = append(xs, &Atom{Field: "event.category", Op: OpEq, Values: []string{st.Category}, Synthetic: "EQL event category"})
		}
		for _, k := range st.JoinKeys {
			xs = append(xs, &Atom{Field: k, Op: OpExists, Synthetic: "sequence join key"})
		}
		if i == 0 {
			for _, f := range r.GroupFields {
				xs = append(xs, &Atom{Field: f, Op: OpExists, Synthetic: r.Type + " field"})
			}
		}
		xs = append(xs, st.Where)
		st.Where = and(xs...)
		out.Steps = append(out.Steps, st)
	}
	out.number()
	return out
}

// inertFields lists fields read only under a negation that no document
// carries: the exclusion they belong to never applies.
func inertFields(q *Query, inv *Inventory) []string {
	pos, neg := map[string]bool{}, map[string]bool{}
	for _, st := range q.Steps {
		var walk func(e Expr, negated bool)
		walk = func(e Expr, negated bool) {
			switch e := e.(type) {
			case And:
				for _, x := range e.X {
					walk(x, negated)
				}
			case Or:
				for _, x := range e.X {
					walk(x, negated)
				}
			case Not:
				walk(e.X, !negated)
			case *Atom:
				for _, f := range e.AllFields() {
					if negated {
						neg[f] = true
					} else {
						pos[f] = true
					}
				}
			}
		}
		walk(st.Where, false)
	}
	var out []string
	for f := range neg {
		if !pos[f] && !inv.Has(f) {
			out = append(out, f)
		}
	}
	sort.Strings(out)
	return out
}
