package bulktest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// This file adds component templates and ingest pipelines, the parts of
// Elasticsearch's API the sink's template setup uses, and runs a stream's
// index.default_pipeline on every document, with the processors Fileward's
// pipeline uses (set, append, pipeline).

// pipeline is a stored ingest pipeline.
type pipeline struct {
	Body       json.RawMessage
	Processors []processor
	OnFailure  []processor
}

// processor is one {"<type>": {options}} entry of a pipeline.
type processor struct {
	Type string
	Opts struct {
		Field                 string          `json:"field"`
		Value                 json.RawMessage `json:"value"`
		Name                  string          `json:"name"`
		IgnoreMissingPipeline bool            `json:"ignore_missing_pipeline"`
		Override              *bool           `json:"override"`
		Tag                   string          `json:"tag"`
		Description           string          `json:"description"`
		If                    string          `json:"if"`
	}
}

// knownProcessors are the processor types bulktest runs. Elasticsearch
// answers an unknown type with 400 parse_exception "No processor type
// exists with name [x]"; bulktest answers the same for types it does not
// implement, so a pipeline it accepts is one it can run.
var knownProcessors = map[string]bool{"set": true, "append": true, "pipeline": true}

func parseProcessors(raw []json.RawMessage) ([]processor, error) {
	var out []processor
	for i, r := range raw {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(r, &m); err != nil || len(m) != 1 {
			return nil, fmt.Errorf("processor [%d] must be an object with exactly one processor type", i)
		}
		for typ, opts := range m {
			if !knownProcessors[typ] {
				//lint:ignore ST1005 Elasticsearch's own message
				return nil, fmt.Errorf("No processor type exists with name [%s]", typ)
			}
			p := processor{Type: typ}
			if err := json.Unmarshal(opts, &p.Opts); err != nil {
				return nil, fmt.Errorf("[%s] processor: %v", typ, err)
			}
			if p.Opts.If != "" {
				return nil, fmt.Errorf("[%s] processor: bulktest does not run painless conditions", typ)
			}
			// Set and append processors: field and value are required;
			// the pipeline processor needs name (Ingest processor
			// reference).
			switch typ {
			case "set", "append":
				if p.Opts.Field == "" {
					return nil, fmt.Errorf("[field] required property is missing")
				}
				if len(p.Opts.Value) == 0 {
					return nil, fmt.Errorf("[value] required property is missing")
				}
			case "pipeline":
				if p.Opts.Name == "" {
					return nil, fmt.Errorf("[name] required property is missing")
				}
			}
			out = append(out, p)
		}
	}
	return out, nil
}

// ingestPipeline serves PUT/GET /_ingest/pipeline/<id> (Elasticsearch
// reference: Ingest APIs > "Create or update pipeline": body with
// description, processors (required), on_failure, _meta; response
// {"acknowledged":true}. "Get pipeline": {"<id>": body}, 404 when missing).
func (s *Server) ingestPipeline(w http.ResponseWriter, r *http.Request, id string) {
	switch r.Method {
	case http.MethodPut:
		var body struct {
			Processors *[]json.RawMessage `json:"processors"`
			OnFailure  []json.RawMessage  `json:"on_failure"`
		}
		raw, ok := s.readJSONBody(w, r, &body)
		if !ok {
			return
		}
		if body.Processors == nil {
			s.errorResponse(w, http.StatusBadRequest, "parse_exception", "[processors] required property is missing")
			return
		}
		procs, err := parseProcessors(*body.Processors)
		if err != nil {
			s.errorResponse(w, http.StatusBadRequest, "parse_exception", err.Error())
			return
		}
		onf, err := parseProcessors(body.OnFailure)
		if err != nil {
			s.errorResponse(w, http.StatusBadRequest, "parse_exception", err.Error())
			return
		}
		s.acknowledge(w, func() { s.pipelines[id] = &pipeline{Body: raw, Processors: procs, OnFailure: onf} })
	case http.MethodGet:
		p, ok := stored(s, s.pipelines, id)
		if !ok {
			writeJSON(w, http.StatusNotFound, map[string]any{})
			return
		}
		writeJSON(w, http.StatusOK, map[string]json.RawMessage{id: p.Body})
	default:
		s.methodNotAllowed(w)
	}
}

// componentTemplate serves PUT/GET /_component_template/<name>
// (Elasticsearch reference: Index APIs > "Create or update component
// template": body {"template": {settings, mappings, aliases}, "version",
// "_meta"}, template required; response {"acknowledged":true}. "Get
// component template": {"component_templates":[{name, component_template}]}).
func (s *Server) componentTemplate(w http.ResponseWriter, r *http.Request, name string) {
	switch r.Method {
	case http.MethodPut, http.MethodPost:
		var body struct {
			Template *struct {
				Settings json.RawMessage `json:"settings"`
				Mappings json.RawMessage `json:"mappings"`
			} `json:"template"`
		}
		raw, ok := s.readJSONBody(w, r, &body)
		if !ok {
			return
		}
		if body.Template == nil {
			s.errorResponse(w, http.StatusBadRequest, "action_request_validation_exception", "Validation Failed: 1: template is missing;")
			return
		}
		s.acknowledge(w, func() { s.components[name] = raw })
	case http.MethodGet:
		c, ok := stored(s, s.components, name)
		if !ok {
			s.errorResponse(w, http.StatusNotFound, "resource_not_found_exception", "component template matching ["+name+"] not found")
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"component_templates": []any{map[string]any{"name": name, "component_template": c}}})
	default:
		s.methodNotAllowed(w)
	}
}

// settingsPipeline reads index.default_pipeline from a template body's
// template.settings, nested ({"index":{"default_pipeline":…}}) or flat
// ({"index.default_pipeline":…}), both of which Elasticsearch accepts.
func settingsPipeline(body json.RawMessage) (string, bool) {
	var t struct {
		Template struct {
			Settings map[string]json.RawMessage `json:"settings"`
		} `json:"template"`
	}
	if json.Unmarshal(body, &t) != nil {
		return "", false
	}
	var v string
	if raw, ok := t.Template.Settings["index.default_pipeline"]; ok && json.Unmarshal(raw, &v) == nil {
		return v, true
	}
	if raw, ok := t.Template.Settings["index"]; ok {
		var idx map[string]json.RawMessage
		if json.Unmarshal(raw, &idx) == nil {
			if p, ok := idx["default_pipeline"]; ok && json.Unmarshal(p, &v) == nil {
				return v, true
			}
		}
	}
	return "", false
}

// defaultPipeline resolves index.default_pipeline of a new stream from its
// template: the component templates in composed_of order, each overriding
// the one before, then the index template's own settings, which override
// them all (Index templates > "Composable index templates": "the index
// template's own template ... takes precedence").
func (s *Server) defaultPipeline(t indexTemplate) string {
	p := ""
	for _, c := range t.ComposedOf {
		if body, ok := s.components[c]; ok {
			if v, ok := settingsPipeline(body); ok {
				p = v
			}
		}
	}
	if v, ok := settingsPipeline(t.Body); ok {
		p = v
	}
	return p
}

// runPipeline runs pipeline id on one document source. s.mu is held.
func (s *Server) runPipeline(id string, src []byte) ([]byte, error) {
	var doc map[string]any
	if err := json.Unmarshal(src, &doc); err != nil {
		return nil, err
	}
	if err := s.execute(id, doc, 0); err != nil {
		return nil, err
	}
	return json.Marshal(doc)
}

func (s *Server) execute(id string, doc map[string]any, depth int) error {
	p, ok := s.pipelines[id]
	if !ok {
		// Bulk API item error when the default pipeline is missing.
		return fmt.Errorf("pipeline with id [%s] does not exist", id)
	}
	if depth > 10 {
		//lint:ignore ST1005 Elasticsearch's own message
		return fmt.Errorf("Cycle detected for pipeline: %s", id)
	}
	for _, pr := range p.Processors {
		if err := s.runProcessor(pr, doc, depth); err != nil {
			if len(p.OnFailure) == 0 {
				return err
			}
			for _, f := range p.OnFailure {
				if f.Type == "pipeline" {
					continue
				}
				_ = s.runProcessorMsg(f, doc, depth, err.Error())
			}
			return nil
		}
	}
	return nil
}

func (s *Server) runProcessor(pr processor, doc map[string]any, depth int) error {
	return s.runProcessorMsg(pr, doc, depth, "")
}

func (s *Server) runProcessorMsg(pr processor, doc map[string]any, depth int, failure string) error {
	switch pr.Type {
	case "set", "append":
		var v any
		if err := json.Unmarshal(pr.Opts.Value, &v); err != nil {
			return err
		}
		if str, ok := v.(string); ok {
			v = render(str, doc, failure)
		}
		if pr.Type == "set" {
			if pr.Opts.Override != nil && !*pr.Opts.Override {
				if _, exists := getPath(doc, pr.Opts.Field); exists {
					return nil
				}
			}
			setPath(doc, pr.Opts.Field, v)
			return nil
		}
		old, _ := getPath(doc, pr.Opts.Field)
		switch o := old.(type) {
		case nil:
			setPath(doc, pr.Opts.Field, []any{v})
		case []any:
			setPath(doc, pr.Opts.Field, append(o, v))
		default:
			setPath(doc, pr.Opts.Field, []any{o, v})
		}
		return nil
	case "pipeline":
		name := render(pr.Opts.Name, doc, failure)
		if _, ok := s.pipelines[name]; !ok && pr.Opts.IgnoreMissingPipeline {
			return nil
		}
		return s.execute(name, doc, depth+1)
	}
	return fmt.Errorf("bulktest cannot run processor %s", pr.Type)
}

// render expands {{{field}}} mustache snippets: _ingest.timestamp is the
// ingest time (RFC 3339 with nanoseconds, as Elasticsearch writes
// ZonedDateTime), _ingest.on_failure_message the failure, anything else a
// document field.
func render(tpl string, doc map[string]any, failure string) string {
	var b strings.Builder
	for {
		i := strings.Index(tpl, "{{{")
		if i < 0 {
			b.WriteString(tpl)
			return b.String()
		}
		j := strings.Index(tpl[i:], "}}}")
		if j < 0 {
			b.WriteString(tpl)
			return b.String()
		}
		b.WriteString(tpl[:i])
		key := strings.TrimSpace(tpl[i+3 : i+j])
		switch key {
		case "_ingest.timestamp":
			b.WriteString(time.Now().UTC().Format(time.RFC3339Nano))
		case "_ingest.on_failure_message":
			b.WriteString(failure)
		default:
			if v, ok := getPath(doc, key); ok {
				fmt.Fprint(&b, v)
			}
		}
		tpl = tpl[i+j+3:]
	}
}

func getPath(doc map[string]any, path string) (any, bool) {
	var cur any = doc
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[k]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func setPath(doc map[string]any, path string, v any) {
	parts := strings.Split(path, ".")
	m := doc
	for _, k := range parts[:len(parts)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	m[parts[len(parts)-1]] = v
}

// ComponentTemplate returns the body of an installed component template.
func (s *Server) ComponentTemplate(name string) (json.RawMessage, bool) {
	return stored(s, s.components, name)
}

// Pipeline returns the body of an installed ingest pipeline.
func (s *Server) Pipeline(id string) (json.RawMessage, bool) {
	p, ok := stored(s, s.pipelines, id)
	if !ok {
		return nil, false
	}
	return p.Body, true
}

// StreamTemplate returns the index template a stream (or index) was
// created from and the index.default_pipeline that template resolved to.
// ok is false for a stream that does not exist.
func (s *Server) StreamTemplate(name string) (template, defaultPipeline string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[name]
	if st == nil {
		return "", "", false
	}
	return st.template, st.defaultPipeline, true
}

// Streams returns the names of every stream or index written to.
func (s *Server) Streams() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.streams))
	for n := range s.streams {
		out = append(out, n)
	}
	return out
}
