package template

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

//go:embed component_template.json
var componentTemplateJSON []byte

//go:embed ilm_policy.json
var ilmPolicyJSON []byte

// Names of what the Elasticsearch sink and the collector install.
const (
	// PolicyName is the ILM policy the component template's settings name.
	PolicyName = "fileward"
	// ComponentName is the component template holding every mapping and
	// setting of Fileward's streams (PUT _component_template/<ComponentName>).
	ComponentName = "fileward@package"
	// PipelineName is the ingest pipeline every Fileward stream runs as its
	// index.default_pipeline: it sets event.ingested and calls the @custom
	// hooks (PUT _ingest/pipeline/<PipelineName>).
	PipelineName = "fileward@default-pipeline"
	// Priority is the priority of the templates of logs-fileward.* streams.
	// Elastic's integration templates use 200 for their own patterns.
	Priority = 200
	// DefendPriority is the priority of the templates of the
	// logs-endpoint.events.*-<namespace> streams of defend_compatible mode:
	// above the Elastic Defend integration's logs-endpoint.events.<x>
	// templates (200, pattern logs-endpoint.events.<x>-*), so that our
	// template wins for exactly our stream and theirs for every other.
	DefendPriority = 250
)

// ILMPolicy returns the body for PUT _ilm/policy/<PolicyName>. The caller
// must not modify it.
func ILMPolicy() []byte { return ilmPolicyJSON }

// ComponentTemplate returns the body for PUT
// _component_template/<ComponentName>: the mappings of every field the
// encoders write and the lifecycle settings. The caller must not modify it.
func ComponentTemplate() []byte { return componentTemplateJSON }

// Raw returns the component template body (kept for callers of the old
// name).
func Raw() []byte { return componentTemplateJSON }

// Pipeline returns the body for PUT _ingest/pipeline/<PipelineName>,
// following Elastic's integration convention: set event.ingested to the
// ingest time, then run the optional global@custom, logs@custom,
// fileward@custom and <type>-<dataset>@custom pipelines, each with
// ignore_missing_pipeline so a cluster without them is fine. A failure is
// recorded on the document (event.kind pipeline_error, error.message)
// rather than losing it.
func Pipeline() []byte {
	p := map[string]any{
		"description": "Fileward: set event.ingested (the look-back field of Elastic's prebuilt rules) and run the @custom pipelines",
		"processors": []any{
			map[string]any{"set": map[string]any{
				"tag":   "set_event_ingested",
				"field": "event.ingested",
				"value": "{{{_ingest.timestamp}}}",
			}},
			map[string]any{"pipeline": map[string]any{"name": "global@custom", "ignore_missing_pipeline": true, "description": "cluster-wide custom pipeline"}},
			map[string]any{"pipeline": map[string]any{"name": "logs@custom", "ignore_missing_pipeline": true, "description": "custom pipeline for every logs-* stream"}},
			map[string]any{"pipeline": map[string]any{"name": "fileward@custom", "ignore_missing_pipeline": true, "description": "custom pipeline for every Fileward stream"}},
			map[string]any{"pipeline": map[string]any{"name": "{{{data_stream.type}}}-{{{data_stream.dataset}}}@custom", "ignore_missing_pipeline": true, "description": "custom pipeline for one dataset, e.g. logs-fileward.file@custom"}},
		},
		"on_failure": []any{
			map[string]any{"set": map[string]any{"field": "event.kind", "value": "pipeline_error"}},
			map[string]any{"append": map[string]any{"field": "error.message", "value": "{{{ _ingest.on_failure_message }}}"}},
		},
		"_meta": map[string]any{"managed_by": "fileward", "managed": true},
	}
	b, _ := json.Marshal(p)
	return b
}

// IndexTemplate is one index template the sink installs.
type IndexTemplate struct {
	Name     string
	Patterns []string
	Priority int
}

// ForStream returns the index template that covers the data stream ds:
//   - logs-fileward.<x>-<namespace>: template logs-fileward.<x>, pattern
//     logs-fileward.<x>-* (every namespace), priority Priority.
//   - logs-endpoint.events.<x>-<namespace> (defend_compatible): template
//     fileward-<ds>, pattern exactly ds, priority DefendPriority.
//   - any other <type>-<dataset>-<namespace>: template <type>-<dataset>,
//     pattern <type>-<dataset>-*; a name of another shape: itself, exactly.
func ForStream(ds string) (IndexTemplate, error) {
	if ds == "" || strings.ContainsAny(ds, `*?"\ /,|<>#:`) || ds != strings.ToLower(ds) || strings.HasPrefix(ds, "-") || strings.HasPrefix(ds, "_") {
		return IndexTemplate{}, fmt.Errorf("invalid data stream name %q: use lowercase <type>-<dataset>-<namespace>", ds)
	}
	if strings.HasPrefix(ds, "logs-endpoint.") {
		return IndexTemplate{Name: "fileward-" + ds, Patterns: []string{ds}, Priority: DefendPriority}, nil
	}
	if p := strings.Split(ds, "-"); len(p) == 3 && p[0] != "" && p[1] != "" && p[2] != "" {
		name := p[0] + "-" + p[1]
		return IndexTemplate{Name: name, Patterns: []string{name + "-*"}, Priority: Priority}, nil
	}
	return IndexTemplate{Name: ds, Patterns: []string{ds}, Priority: Priority}, nil
}

// Body returns the PUT _index_template/<Name> body. The mappings and
// lifecycle come from the component template; composed_of puts Elastic's
// logs@settings first (when the cluster has it) and the @custom component
// templates last, so a user's customisation wins, as in Elastic's
// integrations. index.default_pipeline is set here, in the template
// itself, so that no component template can drop the event.ingested
// pipeline.
func (t IndexTemplate) Body() []byte {
	dataset := t.Name
	if i := strings.IndexByte(dataset, '-'); i >= 0 && !strings.HasPrefix(dataset, "fileward-") {
		dataset = dataset[i+1:]
	}
	custom := []string{"logs@custom", "fileward@custom", t.Name + "@custom"}
	composed := append([]string{"logs@settings", ComponentName}, custom...)
	body := map[string]any{
		"index_patterns":                     t.Patterns,
		"data_stream":                        map[string]any{},
		"priority":                           t.Priority,
		"composed_of":                        composed,
		"ignore_missing_component_templates": append([]string{"logs@settings"}, custom...),
		"template": map[string]any{
			"settings": map[string]any{"index": map[string]any{"default_pipeline": PipelineName}},
		},
		"_meta": map[string]any{
			"description": "Fileward ECS documents (" + dataset + "); mappings in " + ComponentName,
			"managed_by":  "fileward",
			"managed":     true,
		},
	}
	b, _ := json.Marshal(body)
	return b
}

// ForDataStream returns the template name and body for the data stream ds
// (ForStream(ds) and its Body).
func ForDataStream(ds string) (name string, body []byte, err error) {
	t, err := ForStream(ds)
	if err != nil {
		return "", nil, err
	}
	return t.Name, t.Body(), nil
}

// Mappings returns the field type of every leaf field in the component
// template's mappings, keyed by dotted name (for example "file.inode":
// "keyword").
func Mappings() (map[string]string, error) {
	var t struct {
		Template struct {
			Mappings struct {
				Properties map[string]json.RawMessage `json:"properties"`
			} `json:"mappings"`
		} `json:"template"`
	}
	if err := json.Unmarshal(componentTemplateJSON, &t); err != nil {
		return nil, fmt.Errorf("embedded component template: %w", err)
	}
	out := map[string]string{}
	if err := walk("", t.Template.Mappings.Properties, out); err != nil {
		return nil, err
	}
	return out, nil
}

func walk(prefix string, props map[string]json.RawMessage, out map[string]string) error {
	keys := make([]string, 0, len(props))
	for k := range props {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		var f struct {
			Type       string                     `json:"type"`
			Properties map[string]json.RawMessage `json:"properties"`
		}
		if err := json.Unmarshal(props[k], &f); err != nil {
			return fmt.Errorf("mapping %s%s: %w", prefix, k, err)
		}
		if f.Properties != nil {
			if err := walk(prefix+k+".", f.Properties, out); err != nil {
				return err
			}
			continue
		}
		out[prefix+k] = f.Type
	}
	return nil
}
