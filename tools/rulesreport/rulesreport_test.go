package rulesreport

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func loadTestInventory(t *testing.T) *Inventory {
	t.Helper()
	inv := NewInventory()
	n, err := inv.AddFile("test", filepath.Join("testdata", "docs.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	if n != 5 { // the metric document is not an event
		t.Fatalf("%d event documents, want 5", n)
	}
	return inv
}

func loadTestRules(t *testing.T) map[string]*Rule {
	t.Helper()
	rules, err := LoadRules(filepath.Join("testdata", "checkout"))
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]*Rule{}
	for _, r := range rules {
		byID[r.ID[len(r.ID)-1:]] = r
	}
	return byID
}

func TestLoadRules(t *testing.T) {
	rules := loadTestRules(t)
	if len(rules) != 8 {
		t.Fatalf("%d rules, want 8 (the deprecated one skipped)", len(rules))
	}
	if _, ok := rules["9"]; ok {
		t.Error("a rule under rules/_deprecated was loaded")
	}
	nt := rules["5"]
	if !reflect.DeepEqual(nt.GroupFields, []string{"host.id", "process.executable"}) {
		t.Errorf("new_terms fields %v", nt.GroupFields)
	}
	if got := rules["7"].Indices(); !reflect.DeepEqual(got, []string{"logs-endpoint.events.process-*"}) {
		t.Errorf("ES|QL FROM indices %v", got)
	}
	if !rules["1"].DefendData() || rules["4"].DefendData() {
		t.Error("DefendData: rule 1 searches logs-endpoint.events.file*, rule 4 only auditbeat-*")
	}
	if rules["8"].MacOrLinux() || !rules["5"].MacOrLinux() {
		t.Error("MacOrLinux from the OS tags")
	}
	if _, err := LoadRules(t.TempDir()); err == nil {
		t.Error("a directory without rules/ was accepted")
	}
	if _, err := ParseRule("x.toml", []byte("[rule\nname=")); err == nil {
		t.Error("bad TOML accepted")
	}
}

func TestAnalyze(t *testing.T) {
	inv := loadTestInventory(t)
	rules := loadTestRules(t)
	type want struct {
		covered bool
		reasons []string // substrings, each must appear in some reason
		inert   []string
		group   string
	}
	cases := map[string]want{
		"1": {covered: true, group: GroupFile},
		"2": {reasons: []string{"missing field `file.Ext.header_bytes`"}, group: GroupFile},
		"3": {reasons: []string{"`event.type` value \"start\" never emitted"}, inert: []string{"process.parent.name"}, group: GroupFile},
		"4": {reasons: []string{"`event.action` value \"opened-file\" never emitted"}, group: GroupFile},
		"5": {covered: true, group: GroupFile},
		"6": {reasons: []string{"network events", "missing field `destination.port`"}, group: GroupFile},
		"7": {covered: true, group: GroupProcess},
	}
	for id, w := range cases {
		r := rules[id]
		v := Analyze(r, inv)
		if v.ParseError != nil {
			t.Fatalf("%s: %v", r.Name, v.ParseError)
		}
		if v.Covered != w.covered {
			t.Errorf("%s: covered=%v, want %v (reasons %v)", r.Name, v.Covered, w.covered, v.Reasons)
		}
		for _, s := range w.reasons {
			found := false
			for _, x := range v.Reasons {
				found = found || strings.Contains(x.Text, s)
			}
			if !found {
				t.Errorf("%s: no reason containing %q in %v", r.Name, s, v.Reasons)
			}
		}
		if !w.covered && len(v.Reasons) == 0 {
			t.Errorf("%s: not covered without a reason", r.Name)
		}
		if !reflect.DeepEqual(v.Inert, w.inert) {
			t.Errorf("%s: inert %v, want %v", r.Name, v.Inert, w.inert)
		}
		if g := Group(r, v.Query); g != w.group {
			t.Errorf("%s: group %q, want %q", r.Name, g, w.group)
		}
	}
	// The rule applies its look-back to event.ingested; no document has it
	// until the ingest pipeline sets it.
	if v := Analyze(rules["1"], inv); !v.IngestedMissing {
		t.Error("event.ingested not reported missing")
	}
	inv2 := NewInventory()
	inv2.IngestFields = []string{"event.ingested"}
	if _, err := inv2.AddFile("test", filepath.Join("testdata", "docs.ndjson")); err != nil {
		t.Fatal(err)
	}
	if v := Analyze(rules["1"], inv2); v.IngestedMissing {
		t.Error("event.ingested reported missing with an ingest pipeline that sets it")
	}
}

// TestAnalyzeVocabulary: a vocabulary value is covered only if a document
// carries it, with the comparison's case and wildcard semantics; a data
// field's value is anything once the field exists.
func TestAnalyzeVocabulary(t *testing.T) {
	inv := loadTestInventory(t)
	cases := []struct {
		lang, q string
		covered bool
	}{
		{"eql", `file where event.action == "creation"`, true},
		{"eql", `file where event.action == "Creation"`, false}, // == is case-sensitive
		{"eql", `file where event.action : "Creation"`, true},   // : is not
		{"eql", `file where event.action like~ "CREAT*"`, true},
		{"eql", `file where event.action in ("rename", "deletion")`, false},
		{"eql", `file where event.action in~ ("RENAME", "CREATION")`, true},
		{"eql", `file where event.action regex~ "cre.*"`, true},
		{"eql", `file where event.type != "creation" and event.action == "creation"`, false},
		{"eql", `file where file.path == "/any/value/at/all"`, true},
		{"eql", `file where file.path != null`, true},
		{"eql", `file where file.hash.sha256 == null`, true},
		{"eql", `file where file.hash.sha256 != null`, false},
		{"eql", `process where event.action == "exec" and length(process.args) > 1`, true},
		{"eql", `process where host.os.type == "linux" and event.action == "exec"`, false}, // exec only on macOS
		{"eql", `file where not (event.action == "creation" or event.action == "open" or event.action == "modification" or event.action == "exec")`, false},
		{"eql", `file where event.action == "open" and process.name == process.parent.name`, false}, // no process.parent.name
		{"kuery", `event.category:file and event.action:creat*`, true},
		{"kuery", `event.category:network`, false},
		{"kuery", `event.category:file and not file.Ext.header_bytes:*`, true},
		{"kuery", `host.os.type:(linux and macos)`, false},
		{"kuery", `event.action:exec and process.args_count >= 2`, true},
		{"esql", `from logs-* | where event.action IS NOT NULL and file.Ext.entropy > 7`, false},
		{"esql", `from logs-* | eval x = to_lower(process.name) | where x == "zsh" and event.action == "exec"`, true},
	}
	for _, c := range cases {
		r := &Rule{ID: "x", Name: c.q, Language: c.lang, Query: c.q, Tags: []string{"OS: Linux"}}
		v := Analyze(r, inv)
		if v.ParseError != nil {
			t.Errorf("%s: %v", c.q, v.ParseError)
			continue
		}
		if v.Covered != c.covered {
			t.Errorf("%s: covered=%v, want %v (%v)", c.q, v.Covered, c.covered, v.Reasons)
		}
	}
}

func TestReportRoundTrip(t *testing.T) {
	inv := loadTestInventory(t)
	rules, err := LoadRules(filepath.Join("testdata", "checkout"))
	if err != nil {
		t.Fatal(err)
	}
	rep := Build(rules, inv, Options{Commit: "0123456789abcdef0123456789abcdef01234567", DefaultStreams: []string{"logs-fileward.file-default"},
		CompatStreams: []string{"logs-endpoint.events.file-fileward", "logs-endpoint.events.process-fileward"}})
	var b bytes.Buffer
	if err := rep.Write(&b); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	doc, err := Check(md)
	if err != nil {
		t.Fatalf("%v\n%s", err, md)
	}
	want := map[string][3]int{"file-defend": {5, 2, 3}, "file-other": {1, 0, 1}, "process-defend": {1, 1, 0}, "process-other": {0, 0, 0}}
	for _, s := range doc.Sets {
		w := want[s.Key]
		if s.Rules != w[0] || s.Covered != w[1] || s.NotCovered != w[2] {
			t.Errorf("%s: %d/%d/%d, want %v", s.Key, s.Rules, s.Covered, s.NotCovered, w)
		}
	}
	// No rule query text reaches the report: only names, ids and our reasons.
	for _, r := range rules {
		q := strings.TrimSpace(r.Query)
		if len(q) > 40 && strings.Contains(md, q[:40]) {
			t.Errorf("the report copies the query of %s", r.Name)
		}
	}
	if !strings.Contains(md, "| Synthetic EQL: download then write | `00000000-0000-4000-8000-000000000006` |") {
		t.Error("the network rule's row is missing")
	}
	if !strings.Contains(md, "| pattern needed |") || !strings.Contains(md, "| option a |") {
		t.Error("seen-via: auditbeat-* needs a pattern, logs-endpoint.events.* is option a")
	}

	// Malformed reports are rejected.
	bad := map[string]string{
		"counts":   strings.Replace(md, "| 5 | 2 | 3 | 2 |", "| 5 | 3 | 3 | 2 |", 1),
		"rows":     strings.Replace(md, "| 5 | 2 | 3 | 2 |", "| 6 | 3 | 3 | 2 |", 1),
		"reason":   strings.Replace(md, "| option a | missing field `file.Ext.header_bytes` |", "| option a |  |", 1),
		"commit":   strings.Replace(md, "0123456789abcdef", "zz", 1),
		"set":      strings.Replace(md, "(#process-other)", "(#nothing)", 1),
		"seen via": strings.Replace(md, "| option a |", "| maybe |", 1),
	}
	for name, m := range bad {
		if m == md {
			t.Fatalf("%s: the mutation did not apply", name)
		}
		if _, err := Check(m); err == nil {
			t.Errorf("%s: a malformed report passed the check", name)
		}
	}
}

// TestCommittedReport is the CI check of docs/detection-rules.md: it is
// well formed (structure, counts add up, every rule that is not covered has
// a reason). It does not need the rules: they are not in this repository.
func TestCommittedReport(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "detection-rules.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := Check(string(b))
	if err != nil {
		t.Fatalf("docs/detection-rules.md: %v", err)
	}
	total := 0
	for _, s := range doc.Sets {
		total += s.Rules
	}
	if total == 0 {
		t.Error("docs/detection-rules.md lists no rules")
	}
}

func TestSplice(t *testing.T) {
	gen := "# T\n\n" + BeginMarker + "\nnew\n" + EndMarker + "\n"
	if got := Splice("", gen); got != gen {
		t.Errorf("empty page: %q", got)
	}
	old := "# T\n\nhand-written intro\n\n" + BeginMarker + "\nold\n" + EndMarker + "\n\n## Choice of option\nkept\n"
	want := "# T\n\nhand-written intro\n\n" + BeginMarker + "\nnew\n" + EndMarker + "\n\n## Choice of option\nkept\n"
	if got := Splice(old, gen); got != want {
		t.Errorf("splice\n got %q\nwant %q", got, want)
	}
}
