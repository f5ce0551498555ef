package file

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fileward/fileward/sinks"
)

// TestWritevBatches: batches of more buffers than one writev takes
// (iovMax), with empty documents among them (first, in the middle, last)
// and documents of up to 4 KiB, land in the file exactly, line
// for line, and the sink's reused buffers hold no reference to a batch
// after Send.
func TestWritevBatches(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.ndjson")
	s, err := New(Options{Path: path, RotateBytes: 1 << 30, Keep: 1, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	for _, n := range []int{1, iovMax / 2, iovMax/2 + 1, iovMax, 3*iovMax + 7} {
		b := &sinks.Batch{}
		for i := 0; i < n; i++ {
			var doc []byte
			switch {
			case i == 0 && n > 1, i == n/2 && n > 2, i == n-1 && n > 3:
				// empty
			default:
				doc = fmt.Appendf(nil, `{"n":%d,"pad":"%s"}`, i, strings.Repeat("y", (i*7919)%(4<<10)))
			}
			b.Events = append(b.Events, sinks.Event{ID: fmt.Sprint(i), Doc: doc})
			want.Write(doc)
			want.WriteByte('\n')
		}
		if _, err := s.Send(context.Background(), b); err != nil {
			t.Fatalf("batch of %d: %v", n, err)
		}
		for i, buf := range s.bufs[:cap(s.bufs)] {
			if buf != nil {
				t.Fatalf("after a batch of %d, the sink still references buffer %d", n, i)
			}
		}
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("file holds %d bytes, want %d (contents differ)", len(got), want.Len())
	}
}
