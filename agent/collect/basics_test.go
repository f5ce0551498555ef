// The quick unit tests run first (go test runs files in name order), so
// a mutant they kill fails fast under make mutation.

package collect

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/segmentio/kafka-go"

	"github.com/fileward/fileward/sinks"
	"github.com/fileward/fileward/sinks/elasticsearch"
)

func TestSetDefaults(t *testing.T) {
	for _, in := range []Options{{}, {BatchEvents: -1, BatchWait: -1, Workers: -1, SessionTimeout: -1}} {
		o := in
		o.setDefaults()
		if o.BatchEvents != 2048 || o.BatchWait != time.Second || o.Workers != 2 || o.SessionTimeout != 10*time.Second {
			t.Fatalf("defaults of %+v: %+v", in, o)
		}
	}
	o := Options{BatchEvents: 1, BatchWait: time.Nanosecond, Workers: 1, SessionTimeout: time.Nanosecond}
	o.setDefaults()
	if o.BatchEvents != 1 || o.BatchWait != time.Nanosecond || o.Workers != 1 || o.SessionTimeout != time.Nanosecond {
		t.Fatalf("the smallest set values changed: %+v", o)
	}
}

func TestGroupAndReaderConfig(t *testing.T) {
	o := Options{Brokers: []string{"b:9092"}, Topic: "t", GroupID: "g", SessionTimeout: 10 * time.Second, BatchEvents: 2048}
	g := groupConfig(o, &kafka.Dialer{}, nil)
	if g.HeartbeatInterval != 2*time.Second || g.SessionTimeout != 10*time.Second || g.RebalanceTimeout != 10*time.Second {
		t.Fatalf("heartbeat %v, session %v, rebalance %v", g.HeartbeatInterval, g.SessionTimeout, g.RebalanceTimeout)
	}
	if g.Timeout != 10*time.Second || g.PartitionWatchInterval != 30*time.Second || g.JoinGroupBackoff != time.Second {
		t.Fatalf("request timeout %v, partition watch %v, join backoff %v", g.Timeout, g.PartitionWatchInterval, g.JoinGroupBackoff)
	}
	if g.ID != "g" || len(g.Topics) != 1 || g.Topics[0] != "t" || g.StartOffset != kafka.FirstOffset || !g.WatchPartitionChanges {
		t.Fatalf("group config %+v", g)
	}
	if err := g.Validate(); err != nil {
		t.Fatal(err)
	}
	o.SessionTimeout = 200 * time.Millisecond // a fifth is below the 100 ms floor
	if g := groupConfig(o, &kafka.Dialer{}, nil); g.HeartbeatInterval != 100*time.Millisecond {
		t.Fatalf("heartbeat %v for a 200ms session, want the 100ms floor", g.HeartbeatInterval)
	}
	r := readerConfig(o, 3, &kafka.Dialer{}, nil)
	if r.Partition != 3 || r.Topic != "t" || r.QueueCapacity != 1024 || r.MinBytes != 1 || r.MaxBytes != 4<<20 {
		t.Fatalf("reader config %+v", r)
	}
	// MaxWait is also kafka-go's read deadline for a fetch: above a slow
	// broker's answer time.
	if r.MaxWait != 5*time.Second || r.ReadBackoffMin != 50*time.Millisecond || r.ReadBackoffMax != time.Second {
		t.Fatalf("max wait %v, read backoff %v..%v", r.MaxWait, r.ReadBackoffMin, r.ReadBackoffMax)
	}
	if d := kafkaDialer(nil, nil); d.Timeout != 10*time.Second {
		t.Fatalf("dial timeout %v", d.Timeout)
	}
	if a := adminClient(o, nil, nil); a.Timeout != 10*time.Second || a.Transport.(*kafka.Transport).DialTimeout != 10*time.Second {
		t.Fatalf("admin client timeouts %v, %v", a.Timeout, a.Transport.(*kafka.Transport).DialTimeout)
	}
	if g := (Options{SessionTimeout: 10 * time.Second}).grace(); g != 5*time.Second {
		t.Fatalf("grace %v for a 10s session, want half", g)
	}
	o.BatchEvents = 10
	if r := readerConfig(o, 0, &kafka.Dialer{}, nil); r.QueueCapacity != 100 {
		t.Fatalf("queue capacity %d for 10-event batches, want the floor 100", r.QueueCapacity)
	}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestPartStateAndLag(t *testing.T) {
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{o: Options{Topic: topic}, m: m}
	mk := func(hwm, com int64) *partState {
		ps := &partState{}
		ps.hwm.Store(hwm)
		ps.committed.Store(com)
		return ps
	}
	parts := map[int]*partState{0: mk(100, 40), 1: mk(-1, 5), 2: mk(7, -1), 3: mk(10, 12), 4: mk(50, 50), 5: mk(0, 0)}
	parts[0].seeEnd(90) // lower: ignored
	parts[0].seeEnd(100)
	parts[4].seeEnd(60)
	if parts[0].hwm.Load() != 100 || parts[4].hwm.Load() != 60 {
		t.Fatalf("seeEnd: %d, %d", parts[0].hwm.Load(), parts[4].hwm.Load())
	}
	c.publishLag(parts)
	if got := readGauge(t, m.lag); got != 70 { // 60 + 10; unknown ones skipped; 3 ahead counts 0
		t.Fatalf("lag %v, want 70", got)
	}
	// A series for each partition whose end and commit are known (an
	// empty partition, end 0 and commit 0, included), none for the others.
	if n := countSeries(m.partLag); n != 4 {
		t.Fatalf("%d per-partition lag series, want 4", n)
	}
	for p, want := range map[int]float64{0: 60, 3: 0, 4: 10, 5: 0} {
		if got := readGauge(t, m.partLag.WithLabelValues(topic, strconv.Itoa(p))); got != want {
			t.Fatalf("partition %d lag %v, want %v", p, got, want)
		}
	}
}

func readGauge(t *testing.T, g prometheus.Gauge) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 1)
	g.Collect(ch)
	pb := &dto.Metric{}
	if err := (<-ch).Write(pb); err != nil {
		t.Fatal(err)
	}
	return pb.GetGauge().GetValue()
}

// TestGroupConnsCut: cutAll fails a read in flight on a connection dialed
// before it at once, and a connection dialed after it keeps no deadline
// later than the limit (none set, or one set later), while an earlier
// deadline stays.
func TestGroupConnsCut(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c) }() // never answers
		}
	}()
	read := func(c net.Conn) <-chan error {
		done := make(chan error, 1)
		go func() {
			_, err := c.Read(make([]byte, 1))
			done <- err
		}()
		return done
	}
	wait := func(what string, done <-chan error) error {
		t.Helper()
		select {
		case err := <-done:
			return err
		case <-time.After(20 * time.Second):
			t.Fatalf("%s: the read still blocks", what)
			return nil
		}
	}

	g := newGroupConns(5*time.Second, 100*time.Millisecond)
	before, err := g.DialContext(t.Context(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if err := before.SetDeadline(time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	inFlight := read(before)
	if n := g.cutAll(); n != 1 {
		t.Fatalf("cut %d connections, want 1", n)
	}
	if err := wait("before the cut", inFlight); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("the read in flight ended with %v, want a closed connection", err)
	}

	after, err := g.DialContext(t.Context(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer after.Close()
	for _, set := range []func(time.Time) error{after.SetDeadline, after.SetReadDeadline} {
		if err := set(time.Time{}); err != nil { // "no deadline": bounded
			t.Fatal(err)
		}
		if err := wait("no deadline after the cut", read(after)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read: %v, want the limit's deadline", err)
		}
		if err := set(time.Now().Add(time.Hour)); err != nil { // later than the limit: bounded
			t.Fatal(err)
		}
		if err := wait("an hour's deadline after the cut", read(after)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read: %v, want the limit's deadline", err)
		}
	}
	if err := after.SetWriteDeadline(time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}

	// A long limit keeps an earlier deadline.
	long := newGroupConns(5*time.Second, time.Hour)
	long.cutAll()
	c, err := long.DialContext(t.Context(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if err := wait("an earlier deadline", read(c)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read: %v, want its own deadline", err)
	}
	// Closed connections leave the set.
	c.Close()
	if n := long.cutAll(); n != 0 {
		t.Fatalf("cut %d connections after all were closed", n)
	}
	if _, err := long.DialContext(t.Context(), "tcp", "127.0.0.1:1"); err == nil {
		t.Fatal("dial to a closed port succeeded")
	}
}

// TestAwaitLeaveCuts: a group close that does not finish is given a second,
// then the group's connections are cut; one that finishes is not cut.
func TestAwaitLeaveCuts(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	left := make(chan struct{})
	close(left)
	g := newGroupConns(time.Second, time.Second)
	awaitLeave(log, left, g, time.Second)
	if g.cut {
		t.Fatal("connections cut although the group had left")
	}
	stuck := make(chan struct{})
	g = newGroupConns(time.Second, 100*time.Millisecond)
	done := make(chan struct{})
	go func() { awaitLeave(log, stuck, g, time.Second); close(done) }()
	if !waitFor(20*time.Second, func() bool { g.mu.Lock(); defer g.mu.Unlock(); return g.cut }) {
		t.Fatal("the connections of a group that did not leave were not cut")
	}
	close(stuck)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("awaitLeave did not return once the group left")
	}
}

// recordingSink passes batches to the Elasticsearch sink and keeps the
// largest batch size it saw.
type recordingSink struct {
	sinks.Sink
	mu      sync.Mutex
	largest int
	batches int
}

func (r *recordingSink) Send(ctx context.Context, b *sinks.Batch) (sinks.Result, error) {
	r.mu.Lock()
	r.largest = max(r.largest, len(b.Events))
	r.batches++
	r.mu.Unlock()
	return r.Sink.Send(ctx, b)
}

// TestRunRefusesBadOptions: every option Run cannot start with is an error
// that says what is wrong, before anything is consumed.
func TestRunRefusesBadOptions(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "a-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	good := func() Options {
		return Options{Brokers: []string{"127.0.0.1:1"}, Topic: topic, GroupID: "g", Sink: &recordingSink{},
			DeadLetterPath: filepath.Join(dir, "dl", "x.ndjson")}
	}
	dupReg := prometheus.NewRegistry()
	if _, err := newMetrics(dupReg); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		edit func(*Options)
		want string
	}{
		{"no brokers", func(o *Options) { o.Brokers = nil }, "brokers, topic and group_id are required"},
		{"no topic", func(o *Options) { o.Topic = "" }, "brokers, topic and group_id are required"},
		{"no group", func(o *Options) { o.GroupID = "" }, "brokers, topic and group_id are required"},
		{"no sink", func(o *Options) { o.Sink = nil }, "collect: no sink"},
		{"no dead letter", func(o *Options) { o.DeadLetterPath = "" }, "dead_letter path is required"},
		{"metrics registered twice", func(o *Options) { o.Registerer = dupReg }, "collect: register metrics"},
		{"missing CA file", func(o *Options) { o.TLS = TLS{Enabled: true, CAFile: filepath.Join(dir, "no-ca.pem")} }, "no-ca.pem"},
		{"unknown SASL mechanism", func(o *Options) { o.SASL = SASL{Mechanism: "rot13", Username: "u", Password: "p"} }, "rot13"},
		{"dead-letter dir under a file", func(o *Options) { o.DeadLetterPath = filepath.Join(file, "dl", "x.ndjson") }, "collect: dead-letter dir"},
		{"dead-letter path is a directory", func(o *Options) { o.DeadLetterPath = dir }, "collect: open dead-letter file"},
	} {
		o := good()
		c.edit(&o)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := Run(ctx, o)
		cancel()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Run: %v, want an error containing %q", c.name, err, c.want)
		}
	}
}

// TestRunDefaultsNoLoggerNoRegistry: Run with no Logger, no Registerer and
// zero sizes (the defaults) delivers every message once, sets Health, and
// returns nil when ctx ends. Batches are full: never more than BatchEvents
// events, and exactly that many while a backlog lasts.
func TestRunDefaultsNoLoggerNoRegistry(t *testing.T) {
	h := newHarness(t, 1)
	ids := produce(t, h.cluster.ListenAddrs(), 0, 5000)
	h.bulk.SetItemFaults(1, 0) // every item 429 until the health check below
	es, err := elasticsearch.New(context.Background(), elasticsearch.Options{Addresses: []string{h.bulk.URL}, SetupTemplate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer es.Close(context.Background())
	sink := &recordingSink{Sink: es}
	health := &Health{}
	health.set(errors.New("not yet"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Brokers: h.cluster.ListenAddrs(), Topic: topic, GroupID: "fileward-collector",
			Sink: sink, DeadLetterPath: h.dlPath, Health: health})
	}()
	// Items refused (the requests themselves answered 200): unhealthy,
	// saying so.
	health.set(nil)
	if !waitFor(30*time.Second, func() bool { err := health.Err(); return err != nil && strings.Contains(err.Error(), "events refused") }) {
		t.Fatalf("health %v while Elasticsearch refused every item", health.Err())
	}
	h.bulk.SetItemFaults(0, 0)
	h.waitCount(len(ids), 60*time.Second)
	if !waitFor(20*time.Second, func() bool { return health.Err() == nil }) {
		t.Fatalf("health %v after every event was delivered", health.Err())
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	h.expectExactly(ids)
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if sink.largest != 2048 {
		t.Fatalf("largest batch %d events, want the default batch_events 2048 (a backlog of %d)", sink.largest, len(ids))
	}
}

func countSeries(c prometheus.Collector) int {
	ch := make(chan prometheus.Metric, 64)
	c.Collect(ch)
	close(ch)
	return len(ch)
}

// TestRejectedDeadLetterFailure: an event refused for good whose
// dead-letter record cannot be written makes the batch fail with that
// error (the first one, if several), so its offset is never committed.
func TestRejectedDeadLetterFailure(t *testing.T) {
	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	dl, err := openDeadLetter(filepath.Join(t.TempDir(), "dl.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{o: Options{Topic: topic}, dl: dl, m: m}
	fl := &flight{c: c, msgs: map[*byte]*kafka.Message{}}
	b, err := fl.prepare([]kafka.Message{{Topic: topic, Value: docFor("a", 1), Headers: []kafka.Header{{Key: "event.id", Value: []byte("a")}}}})
	if err != nil {
		t.Fatal(err)
	}
	fl.rejected(b.Events, []error{errors.New("mapper_parsing_exception")})
	if err := fl.failed(); err != nil {
		t.Fatalf("failed() = %v after a dead-letter write that worked", err)
	}
	dl.Close() // every write fails from now on
	fl.rejected(b.Events, []error{errors.New("first")})
	first := fl.failed()
	if first == nil || !strings.Contains(first.Error(), "write dead-letter file") {
		t.Fatalf("failed() = %v after a dead-letter write failed", first)
	}
	fl.rejected(b.Events, []error{errors.New("second")})
	if err := fl.failed(); err != first {
		t.Fatalf("failed() = %v, want the first error %v kept", err, first)
	}
}

// TestWatchEnds: the log end offsets of the owned partitions are read from
// the brokers (ListOffsets) every lagEvery, so the lag gauges follow what is
// produced even when nothing is fetched; a partition not owned is not read.
func TestWatchEnds(t *testing.T) {
	h := newHarness(t, 2)
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Brokers: h.cluster.ListenAddrs(), Topic: topic}
	c := &collector{o: o, m: m, log: slog.New(slog.DiscardHandler), lagEvery: 50 * time.Millisecond, admin: adminClient(o, nil, nil)}
	ps := &partState{}
	ps.hwm.Store(-1)
	ps.committed.Store(0)
	parts := map[int]*partState{0: ps}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.watchEnds(ctx, parts) }()
	defer func() { cancel(); <-done }()
	w := &kafka.Writer{Addr: kafka.TCP(h.cluster.ListenAddrs()...), Topic: topic, Balancer: kafka.BalancerFunc(func(kafka.Message, ...int) int { return 0 }), BatchTimeout: time.Millisecond}
	defer w.Close()
	msgs := make([]kafka.Message, 25)
	for i := range msgs {
		msgs[i] = kafka.Message{Value: []byte("{}")}
	}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	if !waitFor(20*time.Second, func() bool { return ps.hwm.Load() == 25 && readGauge(t, m.lag) == 25 }) {
		t.Fatalf("log end %d, lag %v; want 25 and 25", ps.hwm.Load(), readGauge(t, m.lag))
	}
	// Nothing for partition 1 (not owned): no series for it.
	if n := countSeries(m.partLag); n != 1 {
		t.Fatalf("%d lag series, want 1", n)
	}
	// No partitions: returns at once.
	empty := make(chan struct{})
	go func() { defer close(empty); c.watchEnds(context.Background(), nil) }()
	select {
	case <-empty:
	case <-time.After(20 * time.Second):
		t.Fatal("watchEnds with no partitions did not return")
	}
}
