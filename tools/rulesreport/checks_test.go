package rulesreport

import (
	"strings"
	"testing"
)

func checksOf(t *testing.T, ndjson string) map[string]MeaningCheck {
	t.Helper()
	inv := NewInventory()
	if _, err := inv.AddNDJSON("t", "t.ndjson", strings.NewReader(ndjson)); err != nil {
		t.Fatal(err)
	}
	cs, _ := inv.Meaning()
	out := map[string]MeaningCheck{}
	for _, c := range cs {
		out[c.Field] = c
	}
	return out
}

func TestMeaningChecks(t *testing.T) {
	const start = `{"@timestamp":"1","event":{"kind":"event","category":["process"],"type":["start"],"action":"exec"},"process":{"pid":7,"entity_id":"A","args":["x"]},"host":{"id":"h"}}` + "\n"
	good := start +
		`{"@timestamp":"2","event":{"kind":"event","category":["file"],"type":["creation"],"action":"creation"},"file":{"extension":"txt"},"process":{"pid":7,"entity_id":"A","code_signature":{"trusted":true,"team_id":"T","flags":"1"}},"host":{"id":"h"}}` + "\n" +
		`{"@timestamp":"3","event":{"kind":"event","category":["file"],"type":["change"],"action":"modification"},"process":{"pid":7,"entity_id":"A","code_signature":{"trusted":false,"team_id":"T","flags":"3"}},"host":{"id":"h"}}` + "\n" +
		`{"@timestamp":"4","event":{"kind":"event","category":["file"],"type":["change"],"action":"modification"},"process":{"pid":8,"entity_id":"B","code_signature":{"trusted":true,"flags":"1"}},"fileward":{"process":{"platform_binary":true}},"host":{"id":"h"}}` + "\n"
	for field, c := range checksOf(t, good) {
		if !c.Passed {
			t.Errorf("%s: failed on good documents: %s", field, c.Detail)
		}
	}
	bad := strings.Replace(start, `,"args":["x"]`, "", 1) +
		`{"@timestamp":"2","event":{"kind":"event","category":["file"],"type":["creation"],"action":"creation"},"file":{"extension":"TXT"},"process":{"pid":7,"entity_id":"other","code_signature":{"trusted":false,"team_id":"T","flags":"1"}},"host":{"id":"h"}}` + "\n"
	cs := checksOf(t, bad)
	for _, f := range []string{"file.extension", "process.code_signature.trusted", "process.args", "process.entity_id"} {
		if cs[f].Passed {
			t.Errorf("%s: passed on bad documents: %s", f, cs[f].Detail)
		}
	}
	// Without flags the trust meaning cannot be verified: not a pass.
	noFlags := `{"@timestamp":"2","event":{"kind":"event","category":["file"]},"process":{"pid":7,"code_signature":{"trusted":true}}}` + "\n"
	if c := checksOf(t, noFlags)["process.code_signature.trusted"]; c.Passed {
		t.Errorf("trusted without flags passed: %s", c.Detail)
	}
}

// TestJoinDecidesCoverage: a sequence joining a start step and a file step
// by process.entity_id is not covered when no file event carries its start
// event's entity_id.
func TestJoinDecidesCoverage(t *testing.T) {
	q := `sequence by process.entity_id [process where event.type == "start"] [file where event.action == "creation"]`
	r := &Rule{ID: "j", Language: "eql", Query: q, Tags: []string{"OS: Linux"}}
	const startDoc = `{"@timestamp":"1","event":{"kind":"event","category":["process"],"type":["start"],"action":"exec"},"process":{"pid":7,"entity_id":"A"},"host":{"id":"h"}}` + "\n"
	file := func(entity string) string {
		return `{"@timestamp":"2","event":{"kind":"event","category":["file"],"type":["creation"],"action":"creation"},"process":{"pid":7,"entity_id":"` + entity + `"},"host":{"id":"h"}}` + "\n"
	}
	for _, c := range []struct {
		docs    string
		covered bool
	}{
		{startDoc + file("A"), true},
		{startDoc + file("B"), false},
	} {
		inv := NewInventory()
		if _, err := inv.AddNDJSON("t", "t", strings.NewReader(c.docs)); err != nil {
			t.Fatal(err)
		}
		v := Analyze(r, inv)
		if v.Covered != c.covered {
			t.Errorf("covered=%v, want %v (%v)", v.Covered, c.covered, v.Reasons)
		}
		if !c.covered && (len(v.Reasons) != 1 || v.Reasons[0].Kind != "join") {
			t.Errorf("reasons %v, want the join", v.Reasons)
		}
	}
}

// FuzzCheck: the report checker never panics, and what it accepts has
// consistent counts.
func FuzzCheck(f *testing.F) {
	f.Add("at commit `0123456`\n| [a](#file-defend) | 1 | 1 | 0 | 1 |\n<a id=\"file-defend\"></a>\n\n## x\n| Rule | rule_id |\n| n | `0123456789` | eql | linux | option a | covered | |\n")
	f.Add("| a \\| b | c |")
	f.Fuzz(func(t *testing.T, md string) {
		doc, err := Check(md)
		if err != nil {
			return
		}
		for _, s := range doc.Sets {
			if s.Covered+s.NotCovered != s.Rules || s.TableRows != s.Rules {
				t.Fatalf("accepted inconsistent counts: %+v", s)
			}
		}
	})
}
