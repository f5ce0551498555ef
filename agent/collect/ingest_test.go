package collect

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/fileward/fileward/schema"
	"github.com/fileward/fileward/schema/template"
)

// TestCollectorWritesThroughIngestedPipeline: documents an agent encoded
// (a file event, a process start event, a loss report) travel through
// Kafka, and the collector writes each to the data stream it names, each
// created from a template whose default_pipeline sets event.ingested; the
// stored documents carry event.ingested, so a rule's look-back on
// event.ingested sees a document however late the Kafka backlog delivered
// it.
func TestCollectorWritesThroughIngestedPipeline(t *testing.T) {
	h := newHarness(t, 1)
	meta := schema.Meta{HostID: "h1"}
	h.streams = meta.DataStreams()
	enc := schema.NewEncoder(meta)
	old := time.Now().Add(-48 * time.Hour).UnixNano() // a day-old backlog
	file := schema.Event{TimeNS: old, Action: schema.ActionCreation, Provider: schema.ProviderFanotify, Seq: 1, Path: "/etc/cron.d/x", Process: schema.Process{PID: 9, EntityID: "e9"}}
	exec := schema.Event{TimeNS: old, Action: schema.ActionExec, Provider: schema.ProviderFanotify, Seq: 2, Path: "/tmp/x", Process: schema.Process{PID: 9, PPID: 1, EntityID: "e9", Args: []string{"/tmp/x"}}}
	loss := schema.Loss{TimeNS: old, Reason: schema.LossSpoolFull, Count: 5, Seq: 1}
	msg := func(id, doc []byte) kafka.Message {
		return kafka.Message{Key: []byte("h1"), Value: doc, Headers: []kafka.Header{{Key: "event.id", Value: id}}}
	}
	produce(t, h.cluster.ListenAddrs(), 0, 0,
		msg(enc.AppendID(nil, &file), enc.Append(nil, &file)),
		msg(enc.AppendID(nil, &exec), enc.Append(nil, &exec)),
		msg(enc.AppendLossID(nil, &loss), enc.AppendLoss(nil, &loss)))
	stop := h.start(nil)
	want := map[string]int{"logs-fileward.file-default": 1, "logs-fileward.process-default": 1, "logs-fileward.agent-default": 1}
	deadline := time.Now().Add(30 * time.Second)
	for {
		done := true
		for s, n := range want {
			done = done && h.bulk.Count(s) == n
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("streams %v", h.bulk.Streams())
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	start := time.Now().Add(-time.Minute)
	for stream := range want {
		tpl, pipe, _ := h.bulk.StreamTemplate(stream)
		if pipe != template.PipelineName {
			t.Errorf("%s: template %s, default_pipeline %q", stream, tpl, pipe)
		}
		for id := range h.bulk.IDs(stream) {
			d, _ := h.bulk.Doc(stream, id)
			var m struct {
				Timestamp time.Time `json:"@timestamp"`
				Event     struct {
					Ingested time.Time `json:"ingested"`
				} `json:"event"`
			}
			if err := json.Unmarshal(d, &m); err != nil {
				t.Fatal(err)
			}
			if m.Event.Ingested.Before(start) || !m.Timestamp.Before(start) {
				t.Errorf("%s: @timestamp %v, event.ingested %v: want the ingest time, not the event time", stream, m.Timestamp, m.Event.Ingested)
			}
		}
	}
}
