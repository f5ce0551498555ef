package sinktest

import (
	"encoding/json"
	"testing"
)

func TestEvents(t *testing.T) {
	evs := Events("t", 500, 7)
	ids := map[string]bool{}
	total := 0
	for i, ev := range evs {
		var doc struct {
			Event struct {
				ID       string `json:"id"`
				Sequence int    `json:"sequence"`
			} `json:"event"`
			Host struct {
				ID string `json:"id"`
			} `json:"host"`
		}
		if err := json.Unmarshal(ev.Doc, &doc); err != nil {
			t.Fatalf("event %d: %v: %s", i, err, ev.Doc)
		}
		if doc.Event.ID != ev.ID || ev.ID != EventID("t", i) || ids[ev.ID] {
			t.Fatalf("event %d: id %q / doc %q, want unique %q", i, ev.ID, doc.Event.ID, EventID("t", i))
		}
		ids[ev.ID] = true
		if doc.Host.ID != ev.Key || ev.Key != HostID("t", i%7) {
			t.Fatalf("event %d: key %q / host.id %q", i, ev.Key, doc.Host.ID)
		}
		if doc.Event.Sequence != i/7 {
			t.Fatalf("event %d: sequence %d, want %d", i, doc.Event.Sequence, i/7)
		}
		total += len(ev.Doc)
	}
	if avg := total / len(evs); avg < 900 || avg > 1200 {
		t.Fatalf("average document is %d bytes, want about 1 KB", avg)
	}
}
