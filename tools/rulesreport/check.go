package rulesreport

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// CheckedSet is one rule table of a report, as read back.
type CheckedSet struct {
	Key                        string
	Rules, Covered, NotCovered int
	Strict                     int
	TableRows, TableCovered    int
}

// CheckedDoc is a report as read back by Check.
type CheckedDoc struct {
	Commit string
	Sets   []CheckedSet
}

var (
	commitRe  = regexp.MustCompile("at commit `([0-9a-f]{7,40})`")
	summaryRe = regexp.MustCompile(`^\| \[(.+)\]\(#([a-z-]+)\) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|$`)
	anchorRe  = regexp.MustCompile(`^<a id="([a-z-]+)"></a>$`)
	ruleIDRe  = regexp.MustCompile("^`[0-9a-zA-Z-]{8,}`$")
)

// Check parses a generated docs/detection-rules.md and verifies that it is
// well formed: the summary names every rule set, each set's table has as
// many rows as the summary says, the covered counts add up, every rule that
// is not covered has a reason, and no rule_id repeats within a table.
func Check(md string) (*CheckedDoc, error) {
	doc := &CheckedDoc{}
	m := commitRe.FindStringSubmatch(md)
	if m == nil {
		return nil, fmt.Errorf("no detection-rules commit named")
	}
	doc.Commit = m[1]
	lines := strings.Split(md, "\n")
	sets := map[string]*CheckedSet{}
	for _, l := range lines {
		if s := summaryRe.FindStringSubmatch(l); s != nil {
			cs := &CheckedSet{Key: s[2]}
			cs.Rules, _ = strconv.Atoi(s[3])
			cs.Covered, _ = strconv.Atoi(s[4])
			cs.NotCovered, _ = strconv.Atoi(s[5])
			cs.Strict, _ = strconv.Atoi(s[6])
			if cs.Strict > cs.Covered {
				return nil, fmt.Errorf("summary %s: %d covered without caveat > %d covered", cs.Key, cs.Strict, cs.Covered)
			}
			if cs.Covered+cs.NotCovered != cs.Rules {
				return nil, fmt.Errorf("summary %s: %d covered + %d not covered != %d rules", cs.Key, cs.Covered, cs.NotCovered, cs.Rules)
			}
			if sets[cs.Key] != nil {
				return nil, fmt.Errorf("summary names %s twice", cs.Key)
			}
			sets[cs.Key] = cs
			doc.Sets = append(doc.Sets, *cs)
		}
	}
	for _, s := range Sets {
		if sets[s.Key] == nil {
			return nil, fmt.Errorf("summary lacks the rule set %s", s.Key)
		}
	}
	current := ""
	ids := map[string]bool{}
	inTable := false
	for i, l := range lines {
		if a := anchorRe.FindStringSubmatch(l); a != nil {
			if sets[a[1]] != nil {
				current, inTable = a[1], false
				ids = map[string]bool{}
			} else {
				current = ""
			}
			continue
		}
		if strings.HasPrefix(l, "## ") && !strings.HasPrefix(l, "## "+titleOf(current)) {
			current = ""
		}
		if current == "" {
			continue
		}
		if strings.HasPrefix(l, "| Rule | rule_id |") {
			inTable = true
			continue
		}
		if !inTable || !strings.HasPrefix(l, "|") || strings.HasPrefix(l, "|---") {
			continue
		}
		cells := splitRow(l)
		if len(cells) != 7 {
			return nil, fmt.Errorf("line %d: %d cells in a rule row, want 7", i+1, len(cells))
		}
		name, id, verdict := cells[0], cells[1], cells[5]
		if name == "" {
			return nil, fmt.Errorf("line %d: a rule without a name", i+1)
		}
		if !ruleIDRe.MatchString(id) {
			return nil, fmt.Errorf("line %d: rule_id %q is not a rule id", i+1, id)
		}
		if ids[id] {
			return nil, fmt.Errorf("line %d: rule_id %s twice in %s", i+1, id, current)
		}
		ids[id] = true
		switch cells[4] {
		case "default", "option a", "pattern needed":
		default:
			return nil, fmt.Errorf("line %d: seen-via %q", i+1, cells[4])
		}
		cs := sets[current]
		cs.TableRows++
		switch {
		case verdict == "covered":
			cs.TableCovered++
		case strings.TrimSpace(verdict) == "":
			return nil, fmt.Errorf("line %d: rule %s is not covered and has no reason", i+1, id)
		}
	}
	for i := range doc.Sets {
		cs := sets[doc.Sets[i].Key]
		if cs.TableRows != cs.Rules {
			return nil, fmt.Errorf("%s: the summary says %d rules, the table has %d", cs.Key, cs.Rules, cs.TableRows)
		}
		if cs.TableCovered != cs.Covered {
			return nil, fmt.Errorf("%s: the summary says %d covered, the table has %d", cs.Key, cs.Covered, cs.TableCovered)
		}
		doc.Sets[i] = *cs
	}
	return doc, nil
}

func titleOf(key string) string {
	for _, s := range Sets {
		if s.Key == key {
			return s.Title
		}
	}
	return "\x00"
}

// splitRow splits a markdown table row on unescaped pipes.
func splitRow(l string) []string {
	l = strings.TrimSpace(l)
	l = strings.TrimPrefix(l, "|")
	l = strings.TrimSuffix(l, "|")
	var cells []string
	var cur strings.Builder
	for i := 0; i < len(l); i++ {
		if l[i] == '\\' && i+1 < len(l) && l[i+1] == '|' {
			cur.WriteByte('|')
			i++
			continue
		}
		if l[i] == '|' {
			cells = append(cells, strings.TrimSpace(cur.String()))
			cur.Reset()
			continue
		}
		cur.WriteByte(l[i])
	}
	return append(cells, strings.TrimSpace(cur.String()))
}
