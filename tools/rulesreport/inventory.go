package rulesreport

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
)

// VocabFields are the fields whose values Fileward chooses from a closed
// set (its vocabulary): a rule that compares one with a value is covered
// only if a document really carries that value. Every other field holds
// data from the host (paths, names, ids, booleans), and a rule's comparison
// with it is satisfiable whenever the field is present.
var VocabFields = []string{
	"event.action", "event.category", "event.type", "event.outcome", "event.kind",
	"event.module", "event.dataset", "event.provider",
	"host.os.type", "data_stream.type", "data_stream.dataset", "data_stream.namespace",
	"agent.type", "ecs.version",
}

func isVocab(f string) bool {
	for _, v := range VocabFields {
		if v == f {
			return true
		}
	}
	return false
}

// Class is a set of documents with identical vocabulary values: within a
// class every vocabulary field has one value (or one array of values), so a
// comparison with it is decided exactly.
type Class struct {
	Key    string
	Vocab  map[string][]string // vocabulary field -> its values (absent: not set)
	Fields map[string]int      // field -> number of documents of the class that carry it
	Docs   int
	Source string // the document set the class was first seen in
}

// Inventory is what Fileward emits: document classes and per-field figures.
type Inventory struct {
	Classes []*Class
	// FieldDocs counts documents carrying each field, per source label.
	FieldDocs map[string]map[string]int
	// Values are up to MaxExamples distinct values of each field.
	Values map[string][]string
	// ValueCount counts all distinct values seen per field (capped).
	ValueCount map[string]int
	Sources    []Source
	// IngestFields are set at ingest (by the ingest pipeline), not by the agent.
	IngestFields []string
	// Streams are the data streams documents name (data_stream.type-dataset-namespace).
	Streams map[string]int
	facts   []docFacts
	checks  []MeaningCheck // cached by Meaning; reset by add
	join    *JoinFigures
	byKey   map[string]*Class
	seen    map[string]map[string]bool
}

// Source is one input of the inventory.
type Source struct {
	Label string // e.g. "macos: fileward convert --from eslogger"
	Path  string
	Docs  int
}

// MaxExamples bounds the example values kept per field.
const MaxExamples = 12

const maxDistinct = 1000

// NewInventory returns an empty inventory.
func NewInventory() *Inventory {
	return &Inventory{
		FieldDocs:  map[string]map[string]int{},
		Values:     map[string][]string{},
		ValueCount: map[string]int{},
		Streams:    map[string]int{},
		byKey:      map[string]*Class{},
		seen:       map[string]map[string]bool{},
	}
}

// AddNDJSON reads documents, one JSON object a line, under a source label.
// Loss and heartbeat documents (event.kind other than "event") are skipped:
// rules read events. It returns the number of event documents added.
func (inv *Inventory) AddNDJSON(label, path string, r io.Reader) (int, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	n := 0
	for line := 1; ; line++ {
		b, err := br.ReadBytes('\n')
		if len(bytes.TrimSpace(b)) > 0 {
			var doc map[string]any
			d := json.NewDecoder(bytes.NewReader(b))
			d.UseNumber()
			if derr := d.Decode(&doc); derr != nil {
				return n, fmt.Errorf("%s:%d: %w", path, line, derr)
			}
			flat := map[string][]string{}
			flatten("", doc, flat)
			if k := flat["event.kind"]; len(k) == 1 && k[0] != "event" {
				goto next
			}
			for _, f := range inv.IngestFields {
				if _, ok := flat[f]; !ok {
					flat[f] = []string{"(set at ingest)"}
				}
			}
			inv.add(label, flat)
			inv.facts = append(inv.facts, factsOf(label, flat))
			n++
		}
	next:
		if err == io.EOF {
			break
		}
		if err != nil {
			return n, fmt.Errorf("%s: %w", path, err)
		}
	}
	inv.Sources = append(inv.Sources, Source{Label: label, Path: path, Docs: n})
	return n, nil
}

// AddFile reads an NDJSON file.
func (inv *Inventory) AddFile(label, path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return inv.AddNDJSON(label, path, f)
}

func (inv *Inventory) add(label string, flat map[string][]string) {
	inv.checks, inv.join = nil, nil
	var key strings.Builder
	vocab := map[string][]string{}
	for _, f := range VocabFields {
		vs, ok := flat[f]
		if !ok {
			continue
		}
		s := append([]string(nil), vs...)
		sort.Strings(s)
		vocab[f] = s
		fmt.Fprintf(&key, "%s=%s;", f, strings.Join(s, ","))
	}
	c := inv.byKey[key.String()]
	if c == nil {
		c = &Class{Key: key.String(), Vocab: vocab, Fields: map[string]int{}, Source: label}
		inv.byKey[c.Key] = c
		inv.Classes = append(inv.Classes, c)
	}
	c.Docs++
	for f, vs := range flat {
		c.Fields[f]++
		m := inv.FieldDocs[f]
		if m == nil {
			m = map[string]int{}
			inv.FieldDocs[f] = m
		}
		m[label]++
		seen := inv.seen[f]
		if seen == nil {
			seen = map[string]bool{}
			inv.seen[f] = seen
		}
		for _, v := range vs {
			if !seen[v] && len(seen) < maxDistinct {
				seen[v] = true
				inv.ValueCount[f]++
				if len(inv.Values[f]) < MaxExamples || isVocab(f) {
					inv.Values[f] = append(inv.Values[f], v)
				}
			}
		}
	}
	if t, d, ns := one(flat["data_stream.type"]), one(flat["data_stream.dataset"]), one(flat["data_stream.namespace"]); t != "" && d != "" && ns != "" {
		inv.Streams[t+"-"+d+"-"+ns]++
	}
}

func one(vs []string) string {
	if len(vs) == 1 {
		return vs[0]
	}
	return ""
}

// flatten turns a JSON object into dotted field names with their values
// (an array of scalars gives several values; an empty array or a null gives
// none, as in Elasticsearch, where such a field does not exist).
func flatten(prefix string, v any, out map[string][]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			name := k
			if prefix != "" {
				name = prefix + "." + k
			}
			flatten(name, x, out)
		}
	case []any:
		for _, x := range v {
			flatten(prefix, x, out)
		}
	case nil:
	case string:
		out[prefix] = append(out[prefix], v)
	case json.Number:
		out[prefix] = append(out[prefix], v.String())
	case bool:
		out[prefix] = append(out[prefix], strconv.FormatBool(v))
	default:
		out[prefix] = append(out[prefix], fmt.Sprint(v))
	}
}

// Has reports whether any document carries field f.
func (inv *Inventory) Has(f string) bool { return len(inv.FieldDocs[f]) > 0 }

// FieldNames returns every field seen, sorted.
func (inv *Inventory) FieldNames() []string {
	out := make([]string, 0, len(inv.FieldDocs))
	for f := range inv.FieldDocs {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}
