package sinks

import (
	"bytes"
	"errors"
	"testing"
)

func TestBatchRoundTrip(t *testing.T) {
	events := []Event{
		{ID: "a1", Key: "host-1", Doc: []byte(`{"a":1}`)},
		{ID: "b2", Key: "host-1", Doc: []byte(`{"b":2}`)},
		{ID: "c3", Key: "host-2", Doc: []byte(`{}`)},
	}
	p := AppendBatch(nil, events)
	if n, err := BatchLen(p); err != nil || n != 3 {
		t.Fatalf("BatchLen = %d, %v", n, err)
	}
	var b Batch
	if err := DecodeBatch(p, &b); err != nil {
		t.Fatal(err)
	}
	if len(b.Events) != 3 {
		t.Fatalf("got %d events", len(b.Events))
	}
	for i, ev := range b.Events {
		if ev.ID != events[i].ID || ev.Key != events[i].Key || !bytes.Equal(ev.Doc, events[i].Doc) {
			t.Errorf("event %d = %+v, want %+v", i, ev, events[i])
		}
	}
}

func TestBatchWriterMatchesAppendBatch(t *testing.T) {
	var w BatchWriter
	w.Reset("h")
	w.Add([]byte("x"), []byte(`{"x":1}`))
	w.Add([]byte("y"), []byte(`{"y":2}`))
	want := AppendBatch(nil, []Event{{ID: "x", Key: "h", Doc: []byte(`{"x":1}`)}, {ID: "y", Key: "h", Doc: []byte(`{"y":2}`)}})
	if !bytes.Equal(w.Bytes(), want) {
		t.Fatalf("writer bytes %x, want %x", w.Bytes(), want)
	}
	if w.Len() != 2 {
		t.Fatalf("Len = %d", w.Len())
	}
}

func TestDecodeBatchRejectsGarbage(t *testing.T) {
	good := AppendBatch(nil, []Event{{ID: "x", Key: "h", Doc: []byte(`{}`)}})
	for name, p := range map[string][]byte{
		"empty":     nil,
		"version":   append([]byte{9}, good[1:]...),
		"truncated": good[:len(good)-1],
		"trailing":  append(append([]byte{}, good...), 0),
	} {
		var b Batch
		if err := DecodeBatch(p, &b); !errors.Is(err, ErrBadBatch) {
			t.Errorf("%s: err = %v, want ErrBadBatch", name, err)
		}
	}
}

func FuzzDecodeBatch(f *testing.F) {
	f.Add(AppendBatch(nil, []Event{{ID: "x", Key: "h", Doc: []byte(`{}`)}, {ID: "y", Key: "k", Doc: []byte(`{"a":1}`)}}))
	f.Add([]byte{1, 255, 255, 255, 255})
	f.Fuzz(func(t *testing.T, p []byte) {
		var b Batch
		if err := DecodeBatch(p, &b); err != nil {
			return
		}
		again := AppendBatch(nil, b.Events)
		var b2 Batch
		if err := DecodeBatch(again, &b2); err != nil || len(b2.Events) != len(b.Events) {
			t.Fatalf("re-encode of a decoded batch failed: %v", err)
		}
	})
}

// TestBatchEdges: an empty batch round-trips; the 5-byte header is the
// shortest input BatchLen reads; a count may be as large as the input's
// length (a cheap bound before decoding) but not larger; a decoding error
// names the event and the part that is cut short.
func TestBatchEdges(t *testing.T) {
	empty := AppendBatch(nil, nil)
	if !bytes.Equal(empty, []byte{batchVersion, 0, 0, 0, 0, 0}) {
		t.Fatalf("empty batch = %x", empty)
	}
	var b Batch
	b.Events = append(b.Events, Event{ID: "stale"})
	if err := DecodeBatch(empty, &b); err != nil || len(b.Events) != 0 {
		t.Fatalf("empty batch decoded to %d events, %v", len(b.Events), err)
	}
	for _, c := range []struct {
		p    []byte
		n    int
		fail bool
	}{
		{[]byte{batchVersion, 0, 0, 0, 0}, 0, false},
		{[]byte{batchVersion, 0, 0, 0}, 0, true},
		{[]byte{batchVersion, 6, 0, 0, 0, 0}, 6, false},
		{[]byte{batchVersion, 7, 0, 0, 0, 0}, 0, true},
	} {
		n, err := BatchLen(c.p)
		if c.fail != (err != nil) || n != c.n || (err != nil && !errors.Is(err, ErrBadBatch)) {
			t.Errorf("BatchLen(%x) = %d, %v; want %d, fail %v", c.p, n, err, c.n, c.fail)
		}
	}
	one := AppendBatch(nil, []Event{{ID: "x", Key: "h", Doc: []byte(`{}`)}})
	head := len(one) - 1 - 2 - 3 // flags, id, doc
	for _, c := range []struct {
		cut  int
		want string
	}{
		{head, "malformed batch: event 0: truncated"},
		{head + 1, "event 0 id: malformed batch: bad length"},
		{head + 3, "event 0 doc: malformed batch: bad length"},
	} {
		err := DecodeBatch(one[:c.cut], &b)
		if err == nil || err.Error() != c.want || !errors.Is(err, ErrBadBatch) {
			t.Errorf("cut at %d: %v, want %q", c.cut, err, c.want)
		}
	}
}
