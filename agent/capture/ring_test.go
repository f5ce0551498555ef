package capture

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/fileward/fileward/schema"
)

func TestRingFIFOAndDrops(t *testing.T) {
	drops := &Drops{}
	r := NewRing(3, drops)
	for i := uint64(1); i <= 5; i++ {
		ev := Event{Seq: i}
		ok := r.TryPush(&ev)
		if want := i <= 3; ok != want {
			t.Fatalf("push %d = %v, want %v", i, ok, want)
		}
	}
	if got := drops.Load(schema.LossRingFull); got != 2 {
		t.Errorf("ring_full = %d, want 2", got)
	}
	if r.Len() != 3 || r.Cap() != 3 || r.Pushed() != 3 {
		t.Errorf("Len %d Cap %d Pushed %d", r.Len(), r.Cap(), r.Pushed())
	}
	var ev Event
	for want := uint64(1); want <= 3; want++ {
		if !r.Pop(context.Background(), &ev) || ev.Seq != want {
			t.Fatalf("pop = %d, want %d", ev.Seq, want)
		}
	}
	if r.TryPop(&ev) {
		t.Fatal("TryPop on an empty ring returned an event")
	}
}

func TestRingPopHonoursContextAndTimer(t *testing.T) {
	r := NewRing(1, &Drops{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var ev Event
	if r.Pop(ctx, &ev) {
		t.Fatal("Pop returned an event on a cancelled context")
	}
	timer := time.NewTimer(time.Millisecond)
	if got, fired := r.PopOr(context.Background(), timer.C, &ev); got || !fired {
		t.Fatalf("PopOr = %v, %v; want the timer", got, fired)
	}
	if got, fired := r.PopOr(ctx, nil, &ev); got || fired {
		t.Fatalf("PopOr on a cancelled context = %v, %v", got, fired)
	}
}

// TestRingNeverBlocksProducers: with the consumer stalled, many producers
// push far more than the ring holds; every push returns, and pushed plus
// dropped equals what was offered.
func TestRingNeverBlocksProducers(t *testing.T) {
	drops := &Drops{}
	r := NewRing(64, drops)
	const producers, each = 4, 50000
	var wg sync.WaitGroup
	done := make(chan struct{})
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ev := Event{Path: "/x"}
			for i := 0; i < each; i++ {
				r.TryPush(&ev)
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("producers blocked on a stalled ring")
	}
	if got := r.Pushed() + drops.Load(schema.LossRingFull); got != producers*each {
		t.Errorf("pushed %d + dropped %d != offered %d", r.Pushed(), drops.Load(schema.LossRingFull), producers*each)
	}
	if r.Pushed() != 64 {
		t.Errorf("pushed %d, want exactly the capacity 64", r.Pushed())
	}
}

// TestRingPushCostFlatWhenStalled compares the cost of a push into a ring the
// consumer keeps drained with a push into a full ring whose consumer has
// stalled: a drop must not cost more than a successful push (it costs less:
// no copy), however long the stall lasts.
func TestRingPushCostFlatWhenStalled(t *testing.T) {
	if testing.Short() {
		t.Skip("timing test")
	}
	full := testing.Benchmark(BenchmarkRingPushFull)
	long := testing.Benchmark(func(b *testing.B) {
		// The same, after a stall that has already dropped 2M events.
		drops := &Drops{}
		r := NewRing(1024, drops)
		ev := Event{Path: "/usr/lib/libc.so.6"}
		for i := 0; i < 1024; i++ {
			r.TryPush(&ev)
		}
		for i := 0; i < 2_000_000; i++ {
			r.TryPush(&ev)
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			r.TryPush(&ev)
		}
	})
	drained := testing.Benchmark(BenchmarkRingPushDrained)
	t.Logf("push into a drained ring %v/op; into a full ring %v/op; after 2M drops %v/op",
		time.Duration(drained.NsPerOp()), time.Duration(full.NsPerOp()), time.Duration(long.NsPerOp()))
	// Generous bounds: shared CI machines are noisy, but a blocking push would
	// be orders of magnitude slower.
	if full.NsPerOp() > 4*drained.NsPerOp()+50 || long.NsPerOp() > 4*drained.NsPerOp()+50 {
		t.Errorf("a push into a full ring costs %dns, a drained push %dns: not flat", full.NsPerOp(), drained.NsPerOp())
	}
}

// BenchmarkRingPushDrained: push with a consumer keeping up.
func BenchmarkRingPushDrained(b *testing.B) {
	drops := &Drops{}
	r := NewRing(1024, drops)
	ev := Event{Path: "/usr/lib/libc.so.6"}
	var out Event
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		r.TryPush(&ev)
		r.TryPop(&out)
	}
}

// BenchmarkRingPushFull: push into a full ring whose consumer has stalled.
func BenchmarkRingPushFull(b *testing.B) {
	drops := &Drops{}
	r := NewRing(1024, drops)
	ev := Event{Path: "/usr/lib/libc.so.6"}
	for i := 0; i < 1024; i++ {
		r.TryPush(&ev)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r.TryPush(&ev)
	}
}

// TestPushWaitsForRoom: Push on a full ring waits for the consumer instead
// of dropping, and gives up without counting when ctx is done.
func TestPushWaitsForRoom(t *testing.T) {
	drops := &Drops{}
	r := NewRing(2, drops)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const n = 1000
	go func() {
		var ev Event
		for i := 0; i < n; i++ {
			r.Pop(ctx, &ev)
		}
	}()
	for i := 0; i < n; i++ {
		ev := Event{Seq: uint64(i)}
		if !r.Push(ctx, &ev) {
			t.Fatalf("push %d failed", i)
		}
	}
	if d := drops.Load(schema.LossRingFull); d != 0 {
		t.Errorf("%d ring_full drops, want 0", d)
	}
	full := NewRing(1, drops)
	ev := Event{}
	full.Push(ctx, &ev)
	cancel()
	if full.Push(ctx, &ev) {
		t.Error("Push on a full ring succeeded after ctx was done")
	}
	if d := drops.Load(schema.LossRingFull); d != 0 {
		t.Errorf("a cancelled Push counted %d drops", d)
	}
}
