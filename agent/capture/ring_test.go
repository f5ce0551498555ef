package capture

import (
	"context"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

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

// TestRingPushIntoFullRingNeverWaits: a push into a full ring whose consumer
// has stalled returns at once, drops, counts, and allocates nothing, however
// long the stall lasts. A push that waited for space would never return here
// (nothing pops), so the test needs no timing threshold; what a push costs,
// full against drained, is BenchmarkRingPushFull against
// BenchmarkRingPushDrained.
func TestRingPushIntoFullRingNeverWaits(t *testing.T) {
	drops := &Drops{}
	r := NewRing(1024, drops)
	ev := Event{Path: "/usr/lib/libc.so.6"}
	for i := 0; i < 1024; i++ {
		if !r.TryPush(&ev) {
			t.Fatalf("push %d into a ring with room refused", i)
		}
	}
	const stalled = 2_000_000
	done := make(chan int, 1)
	go func() {
		refused := 0
		for i := 0; i < stalled; i++ {
			if !r.TryPush(&ev) {
				refused++
			}
		}
		done <- refused
	}()
	select {
	case refused := <-done:
		if refused != stalled {
			t.Errorf("%d of %d pushes into a full ring refused, want all", refused, stalled)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("pushes into a full ring did not return: TryPush waits for space")
	}
	if got := drops.Load(schema.LossRingFull); got != stalled {
		t.Errorf("ring_full = %d, want exactly %d", got, stalled)
	}
	if r.Len() != 1024 || r.Pushed() != 1024 {
		t.Errorf("Len %d Pushed %d after the stall, want 1024 each", r.Len(), r.Pushed())
	}
	if a := testing.AllocsPerRun(1000, func() { r.TryPush(&ev) }); a != 0 {
		t.Errorf("a push into a full ring allocates %v times", a)
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

// TestEventBytesCountsEveryString: EventBytes counts every string and
// string slice of an Event. The reflection walk fails the test when a field
// is added to schema.Event without EventBytes learning about it.
func TestEventBytesCountsEveryString(t *testing.T) {
	var ev Event
	want := eventSize
	n := 0
	var fill func(v reflect.Value)
	fill = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.String:
			n++
			v.SetString(strings.Repeat("x", n))
			want += int64(n)
		case reflect.Slice:
			if v.Type().Elem().Kind() != reflect.String {
				t.Fatalf("EventBytes does not know slices of %v", v.Type().Elem())
			}
			s := reflect.MakeSlice(v.Type(), 2, 3)
			want += 3 * int64(unsafe.Sizeof(""))
			for i := 0; i < s.Len(); i++ {
				fill(s.Index(i))
			}
			v.Set(s)
		case reflect.Struct:
			for i := 0; i < v.NumField(); i++ {
				fill(v.Field(i))
			}
		case reflect.Map, reflect.Pointer, reflect.Interface, reflect.Array, reflect.Chan, reflect.Func:
			t.Fatalf("EventBytes does not know %v fields", v.Kind())
		}
	}
	fill(reflect.ValueOf(&ev).Elem())
	if got := EventBytes(&ev); got != want {
		t.Errorf("EventBytes = %d, want %d (%d strings)", got, want, n)
	}
}

// TestRingBoundInBytes: a ring bounded in bytes drops (TryPush) or waits
// (Push) at its byte bound even with free slots, admits one event larger
// than the bound into an empty ring, and gives the bytes back on pop.
func TestRingBoundInBytes(t *testing.T) {
	drops := &Drops{}
	ev := Event{Path: strings.Repeat("p", 1000)}
	size := EventBytes(&ev)
	r := NewRingBytes(1024, 3*size, drops)
	for i := 0; i < 5; i++ {
		ok := r.TryPush(&ev)
		if want := i < 3; ok != want {
			t.Fatalf("push %d = %v, want %v", i, ok, want)
		}
	}
	if got := drops.Load(schema.LossRingFull); got != 2 {
		t.Errorf("ring_full = %d, want 2", got)
	}
	if r.Len() != 3 || r.Bytes() != 3*size {
		t.Errorf("Len %d Bytes %d, want 3 and %d", r.Len(), r.Bytes(), 3*size)
	}
	var out Event
	for r.TryPop(&out) {
		if out.Path != ev.Path {
			t.Fatalf("popped path of %d bytes, want %d", len(out.Path), len(ev.Path))
		}
	}
	if r.Bytes() != 0 {
		t.Errorf("Bytes = %d after draining, want 0", r.Bytes())
	}

	big := Event{Path: strings.Repeat("b", 10000)}
	if !r.TryPush(&big) {
		t.Fatal("an event larger than the bound refused by an empty ring")
	}
	if r.TryPush(&ev) {
		t.Fatal("push past the bound accepted")
	}

	// Push waits at the byte bound and goes on as the consumer pops.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const n = 2000
	got := make(chan int, 1)
	go func() {
		var e Event
		c := 0
		for c < n+1 && r.Pop(ctx, &e) {
			c++
		}
		got <- c
	}()
	for i := 0; i < n; i++ {
		e := Event{Seq: uint64(i), Path: ev.Path}
		if !r.Push(ctx, &e) {
			t.Fatalf("push %d failed", i)
		}
		if b := r.Bytes(); b > 3*size && b != EventBytes(&big) {
			t.Fatalf("ring holds %d bytes, bound %d", b, 3*size)
		}
	}
	select {
	case c := <-got:
		if c != n+1 {
			t.Errorf("popped %d, want %d", c, n+1)
		}
	case <-time.After(time.Minute):
		t.Fatal("consumer did not get every pushed event")
	}
	if d := drops.Load(schema.LossRingFull); d != 3 {
		t.Errorf("ring_full = %d, want 3 (none from Push)", d)
	}
}

// TestPushManyProducersAllDelivered: several waiting producers on a small
// ring bounded in events and bytes, the consumer woken producers only at
// the low-water mark: every event arrives, each producer's in order, and
// nothing is counted lost.
func TestPushManyProducersAllDelivered(t *testing.T) {
	drops := &Drops{}
	ev := Event{Path: "/var/log/x"}
	r := NewRingBytes(16, 5*EventBytes(&ev), drops)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const producers, each = 4, 20000
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := Event{Path: "/var/log/x", Stream: uint64(p)}
			for i := 0; i < each; i++ {
				e.Seq = uint64(i)
				if !r.Push(ctx, &e) {
					return
				}
			}
		}()
	}
	next := make([]uint64, producers)
	var out Event
	for n := 0; n < producers*each; n++ {
		if !r.Pop(ctx, &out) {
			t.Fatalf("consumer stopped after %d of %d events: producers stuck", n, producers*each)
		}
		if out.Seq != next[out.Stream] {
			t.Fatalf("producer %d: seq %d, want %d", out.Stream, out.Seq, next[out.Stream])
		}
		next[out.Stream]++
	}
	wg.Wait()
	if d := drops.Load(schema.LossRingFull); d != 0 || r.Len() != 0 || r.Bytes() != 0 {
		t.Errorf("ring_full %d, Len %d, Bytes %d after all, want 0s", d, r.Len(), r.Bytes())
	}
}
