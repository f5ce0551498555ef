package elasticsearch

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fileward/fileward/schema"
	"github.com/fileward/fileward/schema/template"
	"github.com/fileward/fileward/sinks"
	"github.com/fileward/fileward/sinks/elasticsearch/bulktest"
)

// encodedBatch is what the pipeline hands a sink: real encoder output for a
// file event, an exec (process start) event, a loss and a heartbeat.
func encodedBatch(m schema.Meta) *sinks.Batch {
	enc := schema.NewEncoder(m)
	now := time.Now().UnixNano()
	file := schema.Event{TimeNS: now, Action: schema.ActionCreation, Provider: schema.ProviderFanotify, Seq: 1, Path: "/etc/cron.d/evil", Process: schema.Process{PID: 7, Executable: "/tmp/x", EntityID: "e7"}}
	exec := schema.Event{TimeNS: now, Action: schema.ActionExec, Provider: schema.ProviderFanotify, Seq: 2, Path: "/tmp/x", Process: schema.Process{PID: 7, PPID: 1, Executable: "/tmp/x", EntityID: "e7", Args: []string{"/tmp/x", "-v"}}}
	loss := schema.Loss{TimeNS: now, Reason: schema.LossRingFull, Count: 3, Seq: 1}
	hb := schema.Heartbeat{TimeNS: now, Seq: 1}
	b := &sinks.Batch{}
	add := func(id, doc []byte) { b.Events = append(b.Events, sinks.Event{ID: string(id), Key: "h", Doc: doc}) }
	add(enc.AppendID(nil, &file), enc.Append(nil, &file))
	add(enc.AppendID(nil, &exec), enc.Append(nil, &exec))
	add(enc.AppendLossID(nil, &loss), enc.AppendLoss(nil, &loss))
	add(enc.AppendHeartbeatID(nil, &hb), enc.AppendHeartbeat(nil, &hb))
	return b
}

// checkIngested asserts, against the stand-in, that stream exists, was
// created from a template whose index.default_pipeline is the pipeline that
// sets event.ingested, and that its n documents carry event.ingested.
func checkIngested(t *testing.T, srv *bulktest.Server, stream string, n int) {
	t.Helper()
	tpl, pipe, ok := srv.StreamTemplate(stream)
	if !ok {
		t.Fatalf("stream %s not written; streams: %v", stream, srv.Streams())
	}
	if pipe != template.PipelineName {
		t.Errorf("stream %s (template %s) has default_pipeline %q, want %q", stream, tpl, pipe, template.PipelineName)
	}
	body, ok := srv.Pipeline(pipe)
	if !ok {
		t.Fatalf("pipeline %s not installed", pipe)
	}
	var p struct {
		Processors []map[string]struct {
			Field string `json:"field"`
			Value string `json:"value"`
		} `json:"processors"`
	}
	if err := json.Unmarshal(body, &p); err != nil || len(p.Processors) == 0 {
		t.Fatalf("pipeline %s: %v %s", pipe, err, body)
	}
	if set, ok := p.Processors[0]["set"]; !ok || set.Field != "event.ingested" || set.Value != "{{{_ingest.timestamp}}}" {
		t.Errorf("pipeline %s does not start by setting event.ingested: %s", pipe, body)
	}
	if c := srv.Count(stream); c != n {
		t.Errorf("stream %s holds %d documents, want %d", stream, c, n)
	}
	for id := range srv.IDs(stream) {
		d, _ := srv.Doc(stream, id)
		var m struct {
			Event struct {
				Ingested string `json:"ingested"`
			} `json:"event"`
			DataStream struct {
				Type, Dataset, Namespace string
			} `json:"data_stream"`
		}
		if err := json.Unmarshal(d, &m); err != nil {
			t.Fatal(err)
		}
		if _, err := time.Parse(time.RFC3339Nano, m.Event.Ingested); err != nil {
			t.Errorf("%s/%s: event.ingested %q: %v", stream, id, m.Event.Ingested, err)
		}
		if got := m.DataStream.Type + "-" + m.DataStream.Dataset + "-" + m.DataStream.Namespace; got != stream {
			t.Errorf("%s/%s names data stream %s", stream, id, got)
		}
	}
}

// TestSinkWritesEachStreamThroughIngestedPipeline: the sink installs the
// ILM policy, the component template, the event.ingested pipeline and one
// index template per stream, and routes each document to the stream its
// data_stream fields name: file events, process start events, and loss and
// heartbeat documents each to their own. A cluster's logs@settings (which
// in Elasticsearch 8 names logs@default-pipeline) does not displace the
// event.ingested pipeline.
func TestSinkWritesEachStreamThroughIngestedPipeline(t *testing.T) {
	srv := bulktest.New(1)
	defer srv.Close()
	put := func(path, body string) {
		req, _ := http.NewRequest(http.MethodPut, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("PUT %s: %v %v", path, err, res.Status)
		}
		res.Body.Close()
	}
	put("/_ingest/pipeline/logs@default-pipeline", `{"processors":[]}`)
	put("/_component_template/logs@settings", `{"template":{"settings":{"index":{"default_pipeline":"logs@default-pipeline","lifecycle":{"name":"logs"}}}}}`)

	meta := schema.Meta{HostID: "h1"}
	s := newSink(t, srv, func(o *Options) { o.SetupTemplate = true; o.Streams = meta.DataStreams() })
	if perm, _ := deliver(t, s, encodedBatch(meta)); len(perm) > 0 {
		t.Fatalf("permanent failures: %v", perm)
	}
	if _, ok := srv.ComponentTemplate(template.ComponentName); !ok {
		t.Error("component template not installed")
	}
	checkIngested(t, srv, "logs-fileward.file-default", 1)
	checkIngested(t, srv, "logs-fileward.process-default", 1)
	checkIngested(t, srv, "logs-fileward.agent-default", 2)
	// The template names the component templates as Elastic's integrations
	// do, with logs@settings and every @custom optional.
	body, _ := srv.Template("logs-fileward.file")
	var tpl struct {
		ComposedOf    []string `json:"composed_of"`
		IgnoreMissing []string `json:"ignore_missing_component_templates"`
	}
	json.Unmarshal(body, &tpl)
	if strings.Join(tpl.ComposedOf, ",") != "logs@settings,fileward@package,logs@custom,fileward@custom,logs-fileward.file@custom" {
		t.Errorf("composed_of %v", tpl.ComposedOf)
	}
	for _, c := range tpl.ComposedOf {
		if c == template.ComponentName {
			continue
		}
		found := false
		for _, m := range tpl.IgnoreMissing {
			found = found || m == c
		}
		if !found {
			t.Errorf("%s is not in ignore_missing_component_templates", c)
		}
	}
}

// TestSinkCustomPipelineHook: a logs-fileward.file@custom pipeline the user
// installs runs on file events (and only there).
func TestSinkCustomPipelineHook(t *testing.T) {
	srv := bulktest.New(1)
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodPut, srv.URL+"/_ingest/pipeline/logs-fileward.file@custom", strings.NewReader(`{"processors":[{"set":{"field":"labels.site","value":"paris"}}]}`))
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != 200 {
		t.Fatal(err, res.Status)
	}
	meta := schema.Meta{HostID: "h1"}
	s := newSink(t, srv, func(o *Options) { o.SetupTemplate = true; o.Streams = meta.DataStreams() })
	deliver(t, s, encodedBatch(meta))
	for stream, want := range map[string]bool{"logs-fileward.file-default": true, "logs-fileward.process-default": false} {
		for id := range srv.IDs(stream) {
			d, _ := srv.Doc(stream, id)
			if got := bytes.Contains(d, []byte(`"site":"paris"`)); got != want {
				t.Errorf("%s: custom field present %v, want %v: %s", stream, got, want, d)
			}
		}
	}
}

// TestDefendCompatibleStreams: in defend_compatible mode documents go to
// logs-endpoint.events.{file,process}-fileward, under our template, which
// covers exactly those streams and outranks an installed Elastic Defend
// integration's templates (logs-endpoint.events.file-*, priority 200),
// which keep every other namespace.
func TestDefendCompatibleStreams(t *testing.T) {
	srv := bulktest.New(1)
	defer srv.Close()
	for _, ds := range []string{"file", "process"} {
		body := `{"index_patterns":["logs-endpoint.events.` + ds + `-*"],"data_stream":{},"priority":200,"template":{"settings":{"index":{"default_pipeline":"logs-endpoint.events.` + ds + `-8.19.0"}}}}`
		req, _ := http.NewRequest(http.MethodPut, srv.URL+"/_index_template/logs-endpoint.events."+ds, strings.NewReader(body))
		res, err := http.DefaultClient.Do(req)
		if err != nil || res.StatusCode != 200 {
			t.Fatal(err, res.Status)
		}
	}
	meta := schema.Meta{HostID: "h1", DefendCompatible: true}
	s := newSink(t, srv, func(o *Options) { o.SetupTemplate = true; o.Streams = meta.DataStreams() })
	if perm, _ := deliver(t, s, encodedBatch(meta)); len(perm) > 0 {
		t.Fatalf("permanent failures: %v", perm)
	}
	checkIngested(t, srv, "logs-endpoint.events.file-fileward", 1)
	checkIngested(t, srv, "logs-endpoint.events.process-fileward", 1)
	checkIngested(t, srv, "logs-fileward.agent-fileward", 2)
	if tpl, _, _ := srv.StreamTemplate("logs-endpoint.events.file-fileward"); tpl != "fileward-logs-endpoint.events.file-fileward" {
		t.Errorf("file stream created from template %q", tpl)
	}
	body, _ := srv.Template("fileward-logs-endpoint.events.file-fileward")
	var tp struct {
		Patterns []string `json:"index_patterns"`
		Priority int      `json:"priority"`
	}
	json.Unmarshal(body, &tp)
	if len(tp.Patterns) != 1 || tp.Patterns[0] != "logs-endpoint.events.file-fileward" || tp.Priority != template.DefendPriority {
		t.Errorf("our Defend-stream template: %+v", tp)
	}
}

// TestUnknownStreamGoesToConfiguredStream: a document naming a stream the
// sink was not given (from another agent through Kafka, or crafted) is
// written to the configured data stream, never wherever it says.
func TestUnknownStreamGoesToConfiguredStream(t *testing.T) {
	srv := bulktest.New(1)
	defer srv.Close()
	s := newSink(t, srv, func(o *Options) { o.SetupTemplate = true; o.Streams = schema.Meta{}.DataStreams() })
	doc := []byte(`{"@timestamp":"2026-01-01T00:00:00.000000000Z","data_stream":{"type":"logs","dataset":"secret","namespace":"default"},"event":{"id":"x"}}`)
	if _, err := s.Send(context.Background(), &sinks.Batch{Events: []sinks.Event{{ID: "x", Doc: doc}}}); err != nil {
		t.Fatal(err)
	}
	if srv.Count(DefaultDataStream) != 1 || srv.Count("logs-secret-default") != 0 {
		t.Errorf("streams %v", srv.Streams())
	}
}
