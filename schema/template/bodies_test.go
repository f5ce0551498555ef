package template

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// TestComponentTemplate: the component template body (and its old name,
// Raw) is the embedded file, and its settings name the ILM policy the sink
// installs.
func TestComponentTemplate(t *testing.T) {
	if !bytes.Equal(ComponentTemplate(), componentTemplateJSON) || !bytes.Equal(Raw(), ComponentTemplate()) {
		t.Fatal("ComponentTemplate and Raw do not return the embedded component template")
	}
	var ct struct {
		Template struct {
			Settings map[string]any `json:"settings"`
		} `json:"template"`
	}
	if err := json.Unmarshal(ComponentTemplate(), &ct); err != nil {
		t.Fatal(err)
	}
	if got := ct.Template.Settings["index.lifecycle.name"]; got != PolicyName {
		t.Fatalf("index.lifecycle.name = %v, want %q", got, PolicyName)
	}
}

// TestPipeline: event.ingested is set first, then the @custom pipelines run
// in Elastic's order, each optional; a failure marks the document instead
// of losing it.
func TestPipeline(t *testing.T) {
	var p struct {
		Processors []map[string]map[string]any `json:"processors"`
		OnFailure  []map[string]map[string]any `json:"on_failure"`
		Meta       map[string]any              `json:"_meta"`
	}
	if err := json.Unmarshal(Pipeline(), &p); err != nil {
		t.Fatalf("%v: %s", err, Pipeline())
	}
	if len(p.Processors) != 5 {
		t.Fatalf("%d processors: %s", len(p.Processors), Pipeline())
	}
	set := p.Processors[0]["set"]
	if set["field"] != "event.ingested" || set["value"] != "{{{_ingest.timestamp}}}" {
		t.Fatalf("first processor %v, want set event.ingested to the ingest time", p.Processors[0])
	}
	var names []string
	for _, pr := range p.Processors[1:] {
		c := pr["pipeline"]
		if c == nil || c["ignore_missing_pipeline"] != true {
			t.Fatalf("processor %v is not an optional pipeline call", pr)
		}
		names = append(names, c["name"].(string))
	}
	want := []string{"global@custom", "logs@custom", "fileward@custom", "{{{data_stream.type}}}-{{{data_stream.dataset}}}@custom"}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("custom pipelines %v, want %v", names, want)
	}
	if len(p.OnFailure) != 2 || p.OnFailure[0]["set"]["field"] != "event.kind" || p.OnFailure[0]["set"]["value"] != "pipeline_error" ||
		p.OnFailure[1]["append"]["field"] != "error.message" {
		t.Fatalf("on_failure %v, want event.kind pipeline_error and error.message", p.OnFailure)
	}
	if p.Meta["managed_by"] != "fileward" {
		t.Fatalf("_meta %v", p.Meta)
	}
}

// TestForStream: each shape of name gets its documented template name,
// patterns and priority, and the body composes the mappings with the
// @custom hooks last and sets the event.ingested pipeline.
func TestForStream(t *testing.T) {
	for _, c := range []struct {
		ds, name, pattern string
		prio              int
		dataset           string
	}{
		{"logs-fileward.file-default", "logs-fileward.file", "logs-fileward.file-*", Priority, "fileward.file"},
		{"logs-fileward.process-prod", "logs-fileward.process", "logs-fileward.process-*", Priority, "fileward.process"},
		{"logs-endpoint.events.file-default", "fileward-logs-endpoint.events.file-default", "logs-endpoint.events.file-default", DefendPriority, "fileward-logs-endpoint.events.file-default"},
		{"fileward", "fileward", "fileward", Priority, "fileward"},
		{"a-b-c-d", "a-b-c-d", "a-b-c-d", Priority, "b-c-d"},
		{"logs--x", "logs--x", "logs--x", Priority, "-x"},
	} {
		it, err := ForStream(c.ds)
		if err != nil {
			t.Errorf("%s: %v", c.ds, err)
			continue
		}
		if it.Name != c.name || !reflect.DeepEqual(it.Patterns, []string{c.pattern}) || it.Priority != c.prio {
			t.Errorf("%s: %+v, want %s %s %d", c.ds, it, c.name, c.pattern, c.prio)
		}
		var body struct {
			IndexPatterns []string `json:"index_patterns"`
			Priority      int      `json:"priority"`
			ComposedOf    []string `json:"composed_of"`
			Ignore        []string `json:"ignore_missing_component_templates"`
			Template      struct {
				Settings struct {
					Index struct {
						DefaultPipeline string `json:"default_pipeline"`
					} `json:"index"`
				} `json:"settings"`
			} `json:"template"`
			Meta struct {
				Description string `json:"description"`
			} `json:"_meta"`
		}
		if err := json.Unmarshal(it.Body(), &body); err != nil {
			t.Fatalf("%s: %v", c.ds, err)
		}
		wantComposed := []string{"logs@settings", ComponentName, "logs@custom", "fileward@custom", c.name + "@custom"}
		if !reflect.DeepEqual(body.ComposedOf, wantComposed) || !reflect.DeepEqual(body.Ignore, append([]string{"logs@settings"}, wantComposed[2:]...)) {
			t.Errorf("%s: composed_of %v, ignore_missing %v", c.ds, body.ComposedOf, body.Ignore)
		}
		if body.Priority != c.prio || !reflect.DeepEqual(body.IndexPatterns, it.Patterns) || body.Template.Settings.Index.DefaultPipeline != PipelineName {
			t.Errorf("%s: body %s", c.ds, it.Body())
		}
		if !strings.Contains(body.Meta.Description, "("+c.dataset+")") {
			t.Errorf("%s: description %q does not name %q", c.ds, body.Meta.Description, c.dataset)
		}
	}
	for _, bad := range []string{"", "logs-Fileward-x", "-logs-x-y", "_logs-x-y", "logs-x?-y", `a"b`, "a\\b", "a/b", "a,b", "a|b", "a<b", "a>b", "a#b", "a:b"} {
		if _, err := ForStream(bad); err == nil || !strings.Contains(err.Error(), "invalid data stream name") {
			t.Errorf("ForStream(%q) = %v, want it refused", bad, err)
		}
	}
}

// TestWalkRefusesBadMapping: a mapping that is not an object is reported
// with its dotted name, also from a nested level.
func TestWalkRefusesBadMapping(t *testing.T) {
	out := map[string]string{}
	err := walk("", map[string]json.RawMessage{
		"ok":   json.RawMessage(`{"type":"keyword"}`),
		"file": json.RawMessage(`{"properties":{"size":[1]}}`),
	}, out)
	if err == nil || !strings.Contains(err.Error(), "mapping file.size") {
		t.Fatalf("walk: %v, want an error naming file.size", err)
	}
	if err := walk("", map[string]json.RawMessage{"x": json.RawMessage(`"text"`)}, out); err == nil || !strings.Contains(err.Error(), "mapping x") {
		t.Fatalf("walk: %v, want an error naming x", err)
	}
}
