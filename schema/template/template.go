package template

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

//go:embed index_template.json
var indexTemplateJSON []byte

//go:embed ilm_policy.json
var ilmPolicyJSON []byte

// PolicyName is the ILM policy the template's settings refer to.
const PolicyName = "fileward"

// ILMPolicy returns the body for PUT _ilm/policy/<PolicyName>. The caller
// must not modify it.
func ILMPolicy() []byte { return ilmPolicyJSON }

// Raw returns the embedded index template body as written in
// index_template.json (index pattern logs-fileward.file-*).
func Raw() []byte { return indexTemplateJSON }

// ForDataStream returns the template's name and body for the data stream
// ds. A name of the form <type>-<dataset>-<namespace> gets the pattern
// <type>-<dataset>-* (every namespace) and the template name <type>-<dataset>;
// any other name gets a pattern matching exactly itself.
func ForDataStream(ds string) (name string, body []byte, err error) {
	if ds == "" || strings.ContainsAny(ds, `*?"\ /,|<>`) || ds != strings.ToLower(ds) {
		return "", nil, fmt.Errorf("invalid data stream name %q: use lowercase <type>-<dataset>-<namespace>", ds)
	}
	pattern, name := ds, ds
	if p := strings.Split(ds, "-"); len(p) == 3 {
		name = p[0] + "-" + p[1]
		pattern = name + "-*"
	}
	var t map[string]json.RawMessage
	if err := json.Unmarshal(indexTemplateJSON, &t); err != nil {
		return "", nil, fmt.Errorf("embedded index template: %w", err)
	}
	pat, _ := json.Marshal([]string{pattern})
	t["index_patterns"] = pat
	out, err := json.Marshal(t)
	if err != nil {
		return "", nil, fmt.Errorf("marshal index template: %w", err)
	}
	return name, out, nil
}

// Mappings returns the field type of every leaf field in the template's
// mappings, keyed by dotted name (for example "file.inode": "keyword").
func Mappings() (map[string]string, error) {
	var t struct {
		Template struct {
			Mappings struct {
				Properties map[string]json.RawMessage `json:"properties"`
			} `json:"mappings"`
		} `json:"template"`
	}
	if err := json.Unmarshal(indexTemplateJSON, &t); err != nil {
		return nil, fmt.Errorf("embedded index template: %w", err)
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
