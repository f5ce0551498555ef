package rulesreport

import (
	"regexp"
	"strings"
)

// parseESQL parses an ES|QL query: the conditions of its WHERE commands
// become one step (their conjunction); names defined by EVAL, STATS,
// RENAME, DISSECT and GROK are computed values, and a condition on one of
// them is treated as unknown. Other commands are skipped.
func parseESQL(q string) (*Query, error) {
	toks, err := LexEQL(q)
	if err != nil {
		return nil, err
	}
	p := &exprParser{parser: parser{toks: toks, src: q}, esql: true, computed: map[string]bool{}}
	var wheres []Expr
	for {
		t := p.peek()
		if t.Kind == EOF {
			break
		}
		if t.Kind == Op && t.Text == "|" {
			p.next()
			continue
		}
		if t.Kind != Ident {
			return nil, p.errf(t, "expected a command")
		}
		cmd := strings.ToLower(t.Text)
		p.next()
		switch cmd {
		case "where":
			v, err := p.parseOr()
			if err != nil {
				return nil, err
			}
			wheres = append(wheres, p.toBool(v))
			if !p.isOp("|") && p.peek().Kind != EOF {
				return nil, p.errf(p.peek(), "unexpected text after WHERE's condition")
			}
		case "eval", "stats", "inlinestats", "rename", "enrich":
			p.defineNames(cmd)
		case "dissect", "grok":
			p.defineGrokNames()
		default:
			// from, keep, drop, sort, limit, mv_expand, lookup, ...: nothing to evaluate.
			if cmd != "from" && cmd != "keep" && cmd != "drop" && cmd != "sort" && cmd != "limit" && cmd != "mv_expand" {
				p.note("ES|QL command " + strings.ToUpper(cmd) + " is skipped")
			}
			p.skipCommand()
		}
	}
	if len(wheres) == 0 {
		wheres = append(wheres, And{})
	}
	p.note("ES|QL: only WHERE conditions on source fields are evaluated; STATS thresholds and computed values are unknown")
	return &Query{Steps: []Step{{Where: and(wheres...)}}, Notes: sortedKeys(p.notes)}, nil
}

// skipCommand skips to the next top-level pipe.
func (p *exprParser) skipCommand() {
	depth := 0
	for {
		t := p.peek()
		if t.Kind == EOF {
			return
		}
		if t.Kind == Op {
			switch t.Text {
			case "(", "[":
				depth++
			case ")", "]":
				depth--
			case "|":
				if depth <= 0 {
					return
				}
			}
		}
		p.next()
	}
}

// defineNames records "name = expr" definitions (EVAL, STATS, ... AS name)
// up to the next pipe. STATS's BY fields stay source fields.
func (p *exprParser) defineNames(cmd string) {
	depth := 0
	prev := Token{}
	for {
		t := p.peek()
		if t.Kind == EOF || (t.Kind == Op && t.Text == "|" && depth <= 0) {
			return
		}
		if t.Kind == Op {
			switch t.Text {
			case "(", "[":
				depth++
			case ")", "]":
				depth--
			case "=":
				if depth == 0 && prev.Kind == Ident {
					p.computed[prev.Text] = true
				}
			}
		}
		if depth == 0 && prev.Kind == Ident && (strings.EqualFold(prev.Text, "as") || strings.EqualFold(prev.Text, "with")) && t.Kind == Ident {
			p.computed[t.Text] = true
		}
		if cmd == "stats" && depth == 0 && t.Kind == Ident && strings.EqualFold(t.Text, "by") {
			// everything that is not a BY field is gone after STATS; we
			// cannot list source fields, so conditions on them are still
			// evaluated (approximation).
			p.note("fields after STATS are treated as source fields when STATS groups by them")
		}
		prev = t
		p.next()
	}
}

var grokNameRe = regexp.MustCompile(`%\{(?:[A-Za-z0-9_]+:)?([A-Za-z0-9_.@]+)(?::[a-z]+)?\}`)

// defineGrokNames records the names a DISSECT or GROK pattern defines.
func (p *exprParser) defineGrokNames() {
	for {
		t := p.peek()
		if t.Kind == EOF || (t.Kind == Op && t.Text == "|") {
			return
		}
		if t.Kind == String {
			for _, m := range grokNameRe.FindAllStringSubmatch(t.Text, -1) {
				p.computed[m[1]] = true
			}
		}
		p.next()
	}
}
