package replay

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fileward/fileward/agent/capture"
	"github.com/fileward/fileward/internal/testfixtures"
	"github.com/fileward/fileward/schema"
)

// allFixtures concatenates every eslogger fixture into one file.
func allFixtures(t *testing.T, extra ...string) string {
	t.Helper()
	var buf bytes.Buffer
	for _, f := range testfixtures.EsloggerFiles(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(bytes.TrimRight(b, "\n"))
		buf.WriteByte('\n')
	}
	for _, e := range extra {
		buf.WriteString(e + "\n")
	}
	p := filepath.Join(t.TempDir(), "in.ndjson")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func drain(r *capture.Ring) []schema.Event {
	var out []schema.Event
	var ev schema.Event
	for r.TryPop(&ev) {
		out = append(out, ev)
	}
	return out
}

func TestReplayFixtures(t *testing.T) {
	path := allFixtures(t, `{"not json`, ``)
	src, err := New(Options{Path: path, Format: "eslogger"})
	if err != nil {
		t.Fatal(err)
	}
	drops := &capture.Drops{}
	ring := capture.NewRing(1000, drops)
	if err := src.Run(context.Background(), ring, drops); err != nil {
		t.Fatal(err)
	}
	evs := drain(ring)
	// 36 synthesized file events + 2 real exec lines; fork and exit are not mapped.
	if len(evs) != 38 {
		t.Fatalf("replayed %d events, want 38", len(evs))
	}
	if got := drops.Load(schema.LossMalformed); got != 1 {
		t.Errorf("malformed = %d, want 1", got)
	}
	for i, ev := range evs {
		if ev.Seq != uint64(i+1) || ev.Stream != Stream || ev.CreatedNS == 0 || ev.Action == schema.ActionNone || ev.Path == "" {
			t.Fatalf("event %d: seq %d stream %x created %d action %v path %q", i, ev.Seq, ev.Stream, ev.CreatedNS, ev.Action, ev.Path)
		}
	}
}

// TestCreatedClock checks how event.created is read at full speed: once
// per createdEvery events, each event carrying the latest reading, and for
// every event once the ring has been found full.
func TestCreatedClock(t *testing.T) {
	path := allFixtures(t) // 38 mapped events
	for _, c := range []struct {
		name      string
		ring      int
		wantReads int
	}{
		{"room", 1000, (38 + createdEvery - 1) / createdEvery},
		// Full from the 10th push on (TryPush drops the rest; Push would
		// wait): every event after the 10th reads the clock.
		{"full", 9, 1 + 38 - 10},
	} {
		t.Run(c.name, func(t *testing.T) {
			var reads []int64
			now := func() time.Time {
				reads = append(reads, int64(1000*(len(reads)+1)))
				return time.Unix(0, reads[len(reads)-1])
			}
			src, err := New(Options{Path: path, Now: now, DropWhenFull: true})
			if err != nil {
				t.Fatal(err)
			}
			drops := &capture.Drops{}
			ring := capture.NewRing(c.ring, drops)
			if err := src.Run(context.Background(), ring, drops); err != nil {
				t.Fatal(err)
			}
			if len(reads) != c.wantReads {
				t.Fatalf("%d clock readings, want %d", len(reads), c.wantReads)
			}
			for i, ev := range drain(ring) {
				if want := reads[i/createdEvery]; ev.CreatedNS != want {
					t.Fatalf("event %d: created %d, want %d", i, ev.CreatedNS, want)
				}
			}
		})
	}
}

func TestLoopKeepsIDsDistinct(t *testing.T) {
	path := allFixtures(t)
	src, err := New(Options{Path: path, Loop: true})
	if err != nil {
		t.Fatal(err)
	}
	drops := &capture.Drops{}
	ring := capture.NewRing(38*3, drops)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, ring, drops) }()
	deadline := time.Now().Add(10 * time.Second)
	for drops.Load(schema.LossRingFull) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	evs := drain(ring)
	if len(evs) != 38*3 {
		t.Fatalf("got %d events, want a full ring of %d", len(evs), 38*3)
	}
	enc := schema.NewEncoder(schema.Meta{HostID: "h"})
	ids := map[string]bool{}
	for _, ev := range evs {
		id := string(enc.AppendID(nil, &ev))
		if ids[id] {
			t.Fatalf("duplicate id %s for seq %d", id, ev.Seq)
		}
		ids[id] = true
	}
	// A second replay of the same input gives the same ids.
	src2, _ := New(Options{Path: path, Loop: false})
	ring2 := capture.NewRing(100, drops)
	src2.Run(context.Background(), ring2, drops)
	for _, ev := range drain(ring2) {
		if !ids[string(enc.AppendID(nil, &ev))] {
			t.Fatalf("replay gave a new id for seq %d", ev.Seq)
		}
	}
}

func TestRatePaces(t *testing.T) {
	path := allFixtures(t)
	src, _ := New(Options{Path: path, Rate: 200})
	drops := &capture.Drops{}
	ring := capture.NewRing(100, drops)
	start := time.Now()
	if err := src.Run(context.Background(), ring, drops); err != nil {
		t.Fatal(err)
	}
	// 38 events at 200/s take at least 185 ms (37 intervals of 5 ms): a
	// paced replay cannot be faster, however idle the machine. How much
	// slower a loaded machine makes it is no property of pacing.
	if el := time.Since(start); el < 150*time.Millisecond {
		t.Errorf("38 events at 200/s took %v: not paced", el)
	}
}

func TestReplayECS(t *testing.T) {
	enc := schema.NewEncoder(schema.Meta{HostID: "h", HostName: "n", OSType: "macos"})
	src, _ := New(Options{Path: allFixtures(t)})
	drops := &capture.Drops{}
	ring := capture.NewRing(100, drops)
	src.Run(context.Background(), ring, drops)
	orig := drain(ring)
	var buf bytes.Buffer
	for i := range orig {
		buf.Write(enc.Append(nil, &orig[i]))
		buf.WriteByte('\n')
	}
	p := filepath.Join(t.TempDir(), "ecs.ndjson")
	os.WriteFile(p, buf.Bytes(), 0o644)
	src2, err := New(Options{Path: p, Format: "ecs"})
	if err != nil {
		t.Fatal(err)
	}
	src2.Run(context.Background(), ring, drops)
	again := drain(ring)
	if len(again) != len(orig) {
		t.Fatalf("ecs replay gave %d events, want %d", len(again), len(orig))
	}
	for i := range again {
		// Actions that share a spelling (link and clone are "creation",
		// truncate and exchange "modification") come back as the canonical
		// one; the document value is what must survive.
		if again[i].Path != orig[i].Path || again[i].Action.String() != orig[i].Action.String() || again[i].Process.PID != orig[i].Process.PID {
			t.Errorf("event %d differs: %+v vs %+v", i, again[i], orig[i])
		}
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	if _, err := New(Options{Path: "/nonexistent/x"}); err == nil {
		t.Error("missing file accepted")
	}
	if _, err := New(Options{Path: allFixtures(t), Format: "xml"}); err == nil {
		t.Error("unknown format accepted")
	}
}

// TestReplayMaxLine: a valid event padded past MaxLine is skipped and
// counted malformed, whether it fits the read buffer or not; with a limit
// above it the same line is replayed.
func TestReplayMaxLine(t *testing.T) {
	good, err := os.ReadFile(testfixtures.EsloggerFiles(t)[0])
	if err != nil {
		t.Fatal(err)
	}
	first := bytes.SplitN(good, []byte("\n"), 2)[0]
	pad := func(n int) string {
		return `{"pad":"` + string(bytes.Repeat([]byte("x"), n)) + `",` + string(first[1:])
	}
	for _, tc := range []struct {
		name      string
		padding   int
		max       int
		malformed uint64
	}{
		{"within the buffer", 10000, 8192, 1},
		{"past the buffer", 3 << 20, 1 << 20, 1},
		{"under the limit", 10000, 64 << 10, 0},
	} {
		for _, window := range []int{0, 8192} {
			t.Run(fmt.Sprintf("%s/window %d", tc.name, window), func(t *testing.T) {
				path := allFixtures(t, pad(tc.padding))
				src, err := New(Options{Path: path, Format: "eslogger", MaxLine: tc.max})
				if err != nil {
					t.Fatal(err)
				}
				src.window = window
				drops := &capture.Drops{}
				ring := capture.NewRing(1000, drops)
				if err := src.Run(context.Background(), ring, drops); err != nil {
					t.Fatal(err)
				}
				n := len(drain(ring))
				if m := drops.Load(schema.LossMalformed); m != tc.malformed || uint64(n) != 39-tc.malformed {
					t.Fatalf("%d events, %d malformed; want %d, %d", n, m, 39-tc.malformed, tc.malformed)
				}
			})
		}
	}
}

// TestRingBoundInBytes: the real fixtures through a ring bounded in bytes
// with room for far fewer events than slots. With DropWhenFull and no
// consumer, what the ring holds stays within the bound and every event is
// either queued or counted ring_full; a waiting replay with a consumer
// delivers all of them, in order, and counts nothing.
func TestRingBoundInBytes(t *testing.T) {
	path := allFixtures(t)
	const maxBytes = 4 << 10
	src, err := New(Options{Path: path, DropWhenFull: true})
	if err != nil {
		t.Fatal(err)
	}
	drops := &capture.Drops{}
	ring := capture.NewRingBytes(1000, maxBytes, drops)
	if err := src.Run(context.Background(), ring, drops); err != nil {
		t.Fatal(err)
	}
	if ring.Bytes() > maxBytes {
		t.Errorf("ring holds %d bytes, bound %d", ring.Bytes(), maxBytes)
	}
	queued, lost := ring.Len(), drops.Load(schema.LossRingFull)
	if queued == 0 || lost == 0 || uint64(queued)+lost != 38 {
		t.Fatalf("queued %d + ring_full %d, want 38 with both non-zero", queued, lost)
	}
	evs := drain(ring)
	if ring.Bytes() != 0 {
		t.Errorf("ring holds %d bytes after draining", ring.Bytes())
	}
	for i := 1; i < len(evs); i++ {
		if evs[i].Seq <= evs[i-1].Seq {
			t.Fatalf("event %d: seq %d after %d", i, evs[i].Seq, evs[i-1].Seq)
		}
	}

	src, err = New(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	drops = &capture.Drops{}
	ring = capture.NewRingBytes(1000, maxBytes, drops)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	got := make(chan []schema.Event, 1)
	go func() {
		var out []schema.Event
		var ev schema.Event
		for len(out) < 38 && ring.Pop(ctx, &ev) {
			out = append(out, ev)
		}
		got <- out
	}()
	if err := src.Run(ctx, ring, drops); err != nil {
		t.Fatal(err)
	}
	evs = <-got
	if len(evs) != 38 || drops.Load(schema.LossRingFull) != 0 {
		t.Fatalf("waiting replay delivered %d of 38, ring_full %d", len(evs), drops.Load(schema.LossRingFull))
	}
	for i, ev := range evs {
		if ev.Seq != uint64(i+1) {
			t.Fatalf("event %d: seq %d", i, ev.Seq)
		}
	}
}
