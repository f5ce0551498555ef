package rulesreport

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// Set identifies one of the report's rule tables.
type Set struct {
	Key    string // stable id used in the markdown anchors and by Check
	Title  string
	Group  string
	Defend bool
}

// Sets are the report's rule tables, in order.
var Sets = []Set{
	{"file-defend", "File-event rules on Elastic Defend data", GroupFile, true},
	{"file-other", "File-event rules on other data (Auditbeat, auditd, SentinelOne, Cloud Defend, Endgame)", GroupFile, false},
	{"process-defend", "Process-event rules on Elastic Defend data", GroupProcess, true},
	{"process-other", "Process-event rules on other data", GroupProcess, false},
}

// Options configure a report.
type Options struct {
	Commit string // the detection-rules commit the rules came from
	// DefaultStreams are where Fileward writes when documents do not name
	// their data stream (the sink's default).
	DefaultStreams []string
	// CompatStreams are the defend_compatible streams of the option (a).
	CompatStreams []string
}

// Entry is one rule in the report.
type Entry struct {
	*Verdict
	Set    Set
	SeenBy string // "default", "option a", or "pattern needed"
}

// Report is the whole analysis.
type Report struct {
	Opts    Options
	Inv     *Inventory
	Entries []*Entry
	// Unparsed counts macOS/Linux rules whose query could not be parsed or
	// whose language is not parsed (they cannot be assigned to a set).
	Unparsed []*Verdict
}

// Build analyses every rule.
func Build(rules []*Rule, inv *Inventory, opts Options) *Report {
	rep := &Report{Opts: opts, Inv: inv}
	for _, r := range rules {
		if !r.MacOrLinux() {
			continue
		}
		v := Analyze(r, inv)
		if v.Query == nil {
			if r.Language != "lucene" && r.Type != "machine_learning" {
				rep.Unparsed = append(rep.Unparsed, v)
			}
			continue
		}
		g := Group(r, v.Query)
		if g == "" {
			continue
		}
		for _, s := range Sets {
			if s.Group == g && s.Defend == r.DefendData() {
				rep.Entries = append(rep.Entries, &Entry{Verdict: v, Set: s, SeenBy: rep.seenBy(r)})
			}
		}
	}
	return rep
}

func (rep *Report) streams() []string {
	set := map[string]bool{}
	for _, s := range rep.Opts.DefaultStreams {
		set[s] = true
	}
	compat := map[string]bool{}
	for _, s := range rep.Opts.CompatStreams {
		compat[s] = true
	}
	for s := range rep.Inv.Streams {
		if !compat[s] {
			set[s] = true
		}
	}
	return sortedKeys(set)
}

// seenBy says how a rule's index patterns reach Fileward's streams.
func (rep *Report) seenBy(r *Rule) string {
	if matchesAny(r.Indices(), rep.streams()) {
		return "default"
	}
	if matchesAny(r.Indices(), rep.Opts.CompatStreams) {
		return "option a"
	}
	return "pattern needed"
}

func matchesAny(patterns, streams []string) bool {
	for _, p := range patterns {
		for _, s := range streams {
			if globMatch(p, s) {
				return true
			}
		}
	}
	return false
}

// Counts are a set's figures.
type Counts struct{ Rules, Covered, NotCovered, Strict int }

// Count returns the figures of one set.
func (rep *Report) Count(key string) Counts {
	var c Counts
	for _, e := range rep.Entries {
		if e.Set.Key != key {
			continue
		}
		c.Rules++
		if e.Covered {
			c.Covered++
			if len(e.Inert) == 0 && len(e.Meaning) == 0 {
				c.Strict++
			}
		} else {
			c.NotCovered++
		}
	}
	return c
}

func (rep *Report) entries(key string) []*Entry {
	var out []*Entry
	for _, e := range rep.Entries {
		if e.Set.Key == key {
			out = append(out, e)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Covered != out[j].Covered {
			return !out[i].Covered
		}
		return strings.ToLower(out[i].Rule.Name) < strings.ToLower(out[j].Rule.Name)
	})
	return out
}

// cell escapes text for a markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}

// VerdictText is the Verdict column: "covered" or the reasons.
func (e *Entry) VerdictText() string {
	if e.Covered {
		return "covered"
	}
	var rs []string
	for _, r := range e.Reasons {
		rs = append(rs, r.Text)
	}
	return strings.Join(rs, "; ")
}

func (e *Entry) notes() string {
	var ns []string
	if len(e.Inert) > 0 {
		ns = append(ns, "exclusion never applies (not emitted): `"+strings.Join(e.Inert, "`, `")+"`")
	}
	ns = append(ns, e.Meaning...)
	if e.IngestedMissing {
		ns = append(ns, "look-back on `event.ingested`, which no document carries")
	}
	return strings.Join(ns, "; ")
}

func oses(r *Rule) string {
	set := map[string]bool{}
	for _, o := range r.OSes() {
		set[o] = true
	}
	return strings.Join(sortedKeys(set), ", ")
}

// reasonCounts tallies reasons over a set's uncovered rules.
func (rep *Report) reasonCounts(key string) [][2]string {
	n := map[string]int{}
	for _, e := range rep.Entries {
		if e.Set.Key != key || e.Covered {
			continue
		}
		for _, r := range e.Reasons {
			n[r.Text]++
		}
	}
	keys := make([]string, 0, len(n))
	for k := range n {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if n[keys[i]] != n[keys[j]] {
			return n[keys[i]] > n[keys[j]]
		}
		return keys[i] < keys[j]
	})
	out := make([][2]string, len(keys))
	for i, k := range keys {
		out[i] = [2]string{k, fmt.Sprint(n[k])}
	}
	return out
}

// The generated block of docs/detection-rules.md lies between these
// markers; text outside them is hand-written and kept by Splice.
const (
	BeginMarker = "<!-- rules-report:begin (generated by make rules-report; edit outside this block) -->"
	EndMarker   = "<!-- rules-report:end -->"
)

// Splice replaces the generated block of an existing page with gen (a
// Write output); a page without both markers is replaced whole.
func Splice(old, gen string) string {
	i := strings.Index(old, BeginMarker)
	j := strings.Index(old, EndMarker)
	gi := strings.Index(gen, BeginMarker)
	if i < 0 || j < i || gi < 0 {
		return gen
	}
	return old[:i] + strings.TrimSuffix(gen[gi:], "\n") + old[j+len(EndMarker):]
}

// Write renders docs/detection-rules.md.
func (rep *Report) Write(w io.Writer) error {
	b := &strings.Builder{}
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("# Elastic's prebuilt detection rules on Fileward documents\n\n")
	p("%s\n\n", BeginMarker)
	p("For each prebuilt rule of [elastic/detection-rules](https://github.com/elastic/detection-rules) at commit `%s` that reads macOS or Linux file or process events, this page says whether the documents Fileward emits can satisfy it (**covered**) or which field or value is missing. It was computed from the rules' queries and from the documents Fileward's own encoder produced (see [What Fileward emits](#what-fileward-emits)); it copies no rule text: names and ids identify the rules, whose text is under the Elastic License 2.0 and stays in Elastic's repository.\n\n", rep.Opts.Commit)
	p("Regenerate it with `make rules-report RULES=/path/to/detection-rules` (a checkout of that commit). CI checks only that this file is well formed (`go test ./tools/rulesreport/`).\n\n")

	p("## Summary\n\n")
	p("| Rule set | Rules | Covered | Not covered | Covered, no caveat |\n|---|---:|---:|---:|---:|\n")
	for _, s := range Sets {
		c := rep.Count(s.Key)
		p("| [%s](#%s) | %d | %d | %d | %d |\n", s.Title, s.Key, c.Rules, c.Covered, c.NotCovered, c.Strict)
	}
	p("\n\"Covered\" means: every condition the rule needs can be true on some document Fileward emits, with the values Fileward really writes for its vocabulary fields (%s), and with every field the rule compares present on a document of the right kind (a file event for an EQL `file where`, a process event for `process where`). It does not mean the rule will fire: that depends on what happens on the host. It also does not say whether the rule searches Fileward's data streams; the column \"Seen via\" does (see [Index patterns](#index-patterns)).\n\n", "`"+strings.Join(VocabFields, "`, `")+"`")

	p("\"Covered, no caveat\" further requires that every field the rule reads, exclusions included, is emitted, and that no meaning check below fails on a field it reads: a covered rule with a caveat fires, but an exclusion on a field Fileward lacks never applies, or a field's meaning differs (see the Notes column).\n\n")
	fd := rep.Count("file-defend")
	p("Headline: **%d of the %d file-event rules written for Elastic Defend data are covered**; %d are not, each listed below with its reason.\n\n", fd.Covered, fd.Rules, fd.NotCovered)

	p("### Why rules are not covered (file-event rules on Elastic Defend data)\n\n")
	p("| Reason | Rules |\n|---|---:|\n")
	for _, rc := range rep.reasonCounts("file-defend") {
		p("| %s | %s |\n", cell(rc[0]), rc[1])
	}
	if len(rep.reasonCounts("file-defend")) == 0 {
		p("| (none) | 0 |\n")
	}
	p("\n")

	rep.writeMeaning(p)
	rep.writeIndexPatterns(p)
	rep.writeInventory(p)

	for _, s := range Sets {
		c := rep.Count(s.Key)
		p("<a id=\"%s\"></a>\n\n## %s\n\n", s.Key, s.Title)
		p("%d rules: %d covered, %d not covered.\n\n", c.Rules, c.Covered, c.NotCovered)
		p("| Rule | rule_id | Language | OS | Seen via | Verdict | Notes |\n|---|---|---|---|---|---|---|\n")
		for _, e := range rep.entries(s.Key) {
			p("| %s | `%s` | %s | %s | %s | %s | %s |\n", cell(e.Rule.Name), e.Rule.ID, e.Rule.Language, oses(e.Rule), e.SeenBy, cell(e.VerdictText()), cell(e.notes()))
		}
		p("\n")
	}

	if len(rep.Unparsed) > 0 {
		p("## Rules not analysed\n\nThese macOS or Linux rules' queries were not parsed, so they are in no table above:\n\n| Rule | rule_id | Reason |\n|---|---|---|\n")
		for _, v := range rep.Unparsed {
			p("| %s | `%s` | %s |\n", cell(v.Rule.Name), v.Rule.ID, cell(v.Reasons[0].Text))
		}
		p("\n")
	}
	rep.writeApproximations(p)
	p("\n%s\n", EndMarker)
	_, err := io.WriteString(w, b.String())
	return err
}

func (rep *Report) writeMeaning(p func(string, ...any)) {
	checks, _ := rep.Inv.Meaning()
	p("<a id=\"meaning-checks\"></a>\n\n## Meaning checks\n\n")
	p("Presence is not enough where a rule relies on what a value means. These checks run on the same documents:\n\n| Check | Result | On the samples |\n|---|---|---|\n")
	for _, c := range checks {
		res := "passed"
		if !c.Passed {
			res = "**failed**"
		}
		p("| %s | %s | %s |\n", cell(c.Name), res, cell(c.Detail))
	}
	p("\nA failed check adds a note to every covered rule that reads the field. For the join check, a rule whose sequence joins a process start step with a file step `by process.entity_id` is not covered when no file event carries its start event's entity_id.\n\n")
}

func (rep *Report) writeIndexPatterns(p func(string, ...any)) {
	p("<a id=\"index-patterns\"></a>\n\n## Index patterns\n\n")
	p("A rule searches only its index patterns. By default Fileward's documents go to %s", "`"+strings.Join(rep.streams(), "`, `")+"`")
	if len(rep.Inv.Streams) > 0 {
		p(" (named by the documents' `data_stream.*` fields: %s)", "`"+strings.Join(sortedKeys(boolKeys(rep.Inv.Streams)), "`, `")+"`")
	} else {
		p(" (the Elasticsearch sink's default; the documents do not carry `data_stream.*`)")
	}
	p(". The issue's option (a), a `defend_compatible` mode, writes to %s instead. \"Seen via\" in the tables says, per rule: `default` (a rule pattern matches Fileward's default streams), `option a` (matches only the defend_compatible streams), or `pattern needed` (option (b): the rule needs Fileward's pattern added).\n\n", "`"+strings.Join(rep.Opts.CompatStreams, "`, `")+"`")
	p("| Rule set | Default | Option a | Pattern needed |\n|---|---:|---:|---:|\n")
	for _, s := range Sets {
		n := map[string]int{}
		for _, e := range rep.Entries {
			if e.Set.Key == s.Key {
				n[e.SeenBy]++
			}
		}
		p("| %s | %d | %d | %d |\n", s.Title, n["default"], n["option a"], n["pattern needed"])
	}
	p("\nIndex patterns of the file-event rules (a rule can name several):\n\n| Pattern | Rules |\n|---|---:|\n")
	n := map[string]int{}
	for _, e := range rep.Entries {
		if e.Set.Group != GroupFile {
			continue
		}
		for _, ix := range e.Rule.Indices() {
			n[ix]++
		}
	}
	keys := sortedKeys(boolKeys(n))
	sort.SliceStable(keys, func(i, j int) bool { return n[keys[i]] > n[keys[j]] })
	for _, k := range keys {
		p("| `%s` | %d |\n", k, n[k])
	}
	p("\n")
}

func boolKeys(m map[string]int) map[string]bool {
	out := map[string]bool{}
	for k := range m {
		out[k] = true
	}
	return out
}

func (rep *Report) writeInventory(p func(string, ...any)) {
	inv := rep.Inv
	p("<a id=\"what-fileward-emits\"></a>\n\n## What Fileward emits\n\n")
	p("The inventory below is read from real encoder output, not a hand-kept list:\n\n| Documents | Events | Produced by |\n|---|---:|---|\n")
	for _, s := range inv.Sources {
		p("| `%s` | %d | %s |\n", s.Path, s.Docs, cell(s.Label))
	}
	if len(inv.IngestFields) > 0 {
		p("\nFields set at ingest by Fileward's ingest pipeline, added to every document: `%s`.\n", strings.Join(inv.IngestFields, "`, `"))
	}
	p("\nFile and process events fall into %d classes (documents with identical vocabulary values). Every field, the number of event documents that carry it per source, and, for the vocabulary fields, every value seen:\n\n", len(inv.Classes))
	labels := make([]string, 0, len(inv.Sources))
	seen := map[string]bool{}
	for _, s := range inv.Sources {
		if !seen[s.Label] {
			seen[s.Label] = true
			labels = append(labels, s.Label)
		}
	}
	p("| Field |")
	for _, l := range labels {
		p(" %s |", cell(l))
	}
	p(" Values (vocabulary fields) |\n|---|")
	for range labels {
		p("---:|")
	}
	p("---|\n")
	for _, f := range inv.FieldNames() {
		p("| `%s` |", f)
		for _, l := range labels {
			p(" %d |", inv.FieldDocs[f][l])
		}
		vals := ""
		if isVocab(f) {
			vs := append([]string(nil), inv.Values[f]...)
			sort.Strings(vs)
			vals = "`" + strings.Join(vs, "`, `") + "`"
			if inv.ValueCount[f] > len(vs) {
				vals += fmt.Sprintf(" (and %d more)", inv.ValueCount[f]-len(vs))
			}
		}
		p(" %s |\n", cell(vals))
	}
	p("\n")
}

func (rep *Report) writeApproximations(p func(string, ...any)) {
	p("## Approximations\n\n")
	p("The report parses three query languages with small hand-written parsers (`tools/rulesreport`) and evaluates each query abstractly; it is an approximation, and these are its known limits:\n\n")
	p("- **Abstract evaluation.** Each comparison is true, false, or either on a class of documents. A comparison with a vocabulary field (%s) is decided from the values really emitted; a comparison with any other field (paths, names, ids, booleans, numbers) can be true whenever the field is present, because its value comes from the host. A field absent from a class makes a comparison false there, so an exclusion (`not ...`) on a field Fileward never writes never applies (the Notes column lists such fields: they can cause false positives, not missed detections).\n", "`"+strings.Join(VocabFields, "`, `")+"`")
	p("- **Correlation.** An EQL sequence is covered when each of its steps can match some document and carries the sequence's join keys; the join itself (same `process.entity_id` on both documents) is not checked, nor `maxspan`, `runs` or `until` timing. `until` and missing-event (`![...]`) steps need not match.\n")
	p("- **Reasons.** A rule that is not covered gets a minimal set of blocking conditions found greedily: relaxing all of them makes the rule satisfiable, relaxing any fewer does not (another minimal set may exist).\n")
	p("- **Functions and arithmetic** (`startsWith`, `length`, `cidrMatch`, `to_lower`, ...) and comparisons between two fields are true or false whenever every field they read is present; their literals are not evaluated. Ranges (`<`, `>=`) likewise.\n")
	p("- **Lineage** (`descendant of [...]`, `child of`, `event of`) is approximated: the inner query must be satisfiable and the document must carry `process.parent.entity_id`.\n")
	p("- **EQL pipes** (`| head`, `| unique`, `| filter`) are ignored. **ES|QL**: only WHERE conditions on source fields are evaluated; names defined by EVAL, STATS, RENAME, DISSECT and GROK are computed and unknown, and STATS thresholds are not evaluated.\n")
	p("- **KQL**: a quoted value is an exact match, an unquoted value with `*` a wildcard, `field:*` an existence test, consecutive bare words one value; free text (a value without a field) is unknown. Text-field analysis (tokenised `match` semantics) is not modelled: every comparison is treated as a keyword comparison.\n")
	p("- **new_terms and threshold** rules need their group-by fields present (a document without them produces no term); the history window and threshold count are not evaluated.\n")
	p("- **Rule selection.** A rule is for macOS or Linux when it has an `OS: macOS` or `OS: Linux` tag (else when its query compares `host.os.type` with `macos` or `linux`). It reads file events when an EQL step is `file where`, or its query compares `event.category` with `file` outside a negation, or (no category in the query) an index pattern names `file`; process events likewise with `process`. A rule on Elastic Defend data has an index pattern starting `logs-endpoint.events`. Rules under `rules/_deprecated` are skipped. These criteria give slightly different totals than other counts of the same repository.\n")
	p("- **Samples.** Field presence and vocabulary values are those of the sample documents listed above; a field Fileward writes only in a situation the samples do not exercise is reported missing, and a field present on some documents of a kind counts as present for that kind (the inventory shows on how many). The macOS documents are `fileward convert --from eslogger` over the repository's eslogger fixtures (real and synthesized eslogger lines). The Linux documents are the real agent's output (`rulesreport linux-sample`: `fileward run` with the fanotify source on a tmpfs, a fixed workload of file operations and runs of copied `sh` and `cp`), with `source.fanotify.process_args: true` where the agent has that option. Both are in the agent's default data-stream mode.\n")
	notes := map[string]int{}
	for _, e := range rep.Entries {
		for _, n := range e.Query.Notes {
			notes[n]++
		}
	}
	if len(notes) > 0 {
		p("\nParser notes on the analysed rules (rules affected):\n\n")
		for _, k := range sortedKeys(boolKeys(notes)) {
			p("- %s (%d)\n", k, notes[k])
		}
	}
}
