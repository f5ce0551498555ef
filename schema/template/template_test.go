package template

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/fileward/fileward/schema"
)

var update = flag.Bool("update", false, "regenerate component_template.json from schema.Fields()")

// textSubfield lists path-like keywords that also get a .text subfield for
// full-text search, as ECS does for file.path and process.executable.
var textSubfield = map[string]bool{"file.path": true, "process.executable": true, "file.Ext.original.path": true}

// build renders the index template from a field list.
func build(fields []schema.Field) ([]byte, error) {
	props := map[string]any{}
	for _, f := range fields {
		parts := strings.Split(f.Name, ".")
		if f.Name == "@timestamp" {
			parts = []string{"@timestamp"}
		}
		node := props
		for _, p := range parts[:len(parts)-1] {
			child, ok := node[p].(map[string]any)
			if !ok {
				child = map[string]any{"properties": map[string]any{}}
				node[p] = child
			}
			node = child["properties"].(map[string]any)
		}
		m := map[string]any{"type": f.Type}
		switch {
		case f.Type == "keyword":
			m["ignore_above"] = 1024
			if textSubfield[f.Name] {
				m["fields"] = map[string]any{"text": map[string]any{"type": "match_only_text"}}
			}
		}
		node[parts[len(parts)-1]] = m
	}
	tpl := map[string]any{
		"template": map[string]any{
			"settings": map[string]any{
				"index.lifecycle.name":             PolicyName,
				"index.codec":                      "best_compression",
				"index.mapping.total_fields.limit": 2000,
			},
			"mappings": map[string]any{
				"dynamic":        true,
				"date_detection": false,
				"dynamic_templates": []any{map[string]any{"strings_as_keyword": map[string]any{
					"match_mapping_type": "string",
					"mapping":            map[string]any{"type": "keyword", "ignore_above": 1024},
				}}},
				"properties": props,
			},
		},
		"_meta": map[string]any{
			"description": "Fileward ECS documents; generated from schema.Fields() by go test ./schema/template -update",
			"managed_by":  "fileward",
		},
	}
	b, err := json.MarshalIndent(tpl, "", "  ")
	return append(b, '\n'), err
}

func TestTemplateMatchesSchemaFields(t *testing.T) {
	want, err := build(schema.Fields())
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile("component_template.json", want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if !bytes.Equal(want, componentTemplateJSON) {
		t.Fatal("component_template.json is stale: run go test ./schema/template -update")
	}
}

func TestEveryFieldMapped(t *testing.T) {
	m, err := Mappings()
	if err != nil {
		t.Fatal(err)
	}
	fields := schema.Fields()
	if len(fields) < 40 {
		t.Fatalf("schema.Fields() has only %d fields", len(fields))
	}
	for _, f := range fields {
		got, ok := m[f.Name]
		if !ok {
			t.Errorf("%s (%s) has no mapping", f.Name, f.Type)
			continue
		}
		if got != f.Type {
			t.Errorf("%s mapped as %s, schema says %s", f.Name, got, f.Type)
		}
	}
	// ECS types the contract names explicitly.
	for name, typ := range map[string]string{
		"file.inode": "keyword", "file.device": "keyword", "file.mode": "keyword", "file.uid": "keyword",
		"file.size": "long", "process.pid": "long", "event.created": "date", "@timestamp": "date",
		"event.ingested": "date", "data_stream.dataset": "constant_keyword",
		"process.code_signature.trusted": "boolean",
	} {
		if m[name] != typ {
			t.Errorf("%s mapped as %q, want %q", name, m[name], typ)
		}
	}
}

func TestForDataStream(t *testing.T) {
	name, body, err := ForDataStream("logs-fileward.file-prod")
	if err != nil || name != "logs-fileward.file" {
		t.Fatalf("%q %v", name, err)
	}
	var tpl struct {
		IndexPatterns []string        `json:"index_patterns"`
		DataStream    json.RawMessage `json:"data_stream"`
	}
	if err := json.Unmarshal(body, &tpl); err != nil || tpl.IndexPatterns[0] != "logs-fileward.file-*" || string(tpl.DataStream) != "{}" {
		t.Fatalf("%s %v", body, err)
	}
	name, body, _ = ForDataStream("fileward")
	_ = json.Unmarshal(body, &tpl)
	if name != "fileward" || tpl.IndexPatterns[0] != "fileward" {
		t.Fatalf("%q %v", name, tpl.IndexPatterns)
	}
	for _, bad := range []string{"", "Logs-x-y", "logs-*", "a b"} {
		if _, _, err := ForDataStream(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestILMPolicy(t *testing.T) {
	var p struct {
		Policy struct {
			Phases map[string]struct {
				Actions map[string]json.RawMessage `json:"actions"`
			} `json:"phases"`
		} `json:"policy"`
	}
	if err := json.Unmarshal(ILMPolicy(), &p); err != nil {
		t.Fatal(err)
	}
	if _, ok := p.Policy.Phases["hot"].Actions["rollover"]; !ok {
		t.Fatal("hot phase has no rollover")
	}
	if _, ok := p.Policy.Phases["delete"].Actions["delete"]; !ok {
		t.Fatal("no delete phase")
	}
}
