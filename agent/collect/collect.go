package collect

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"

	"github.com/fileward/fileward/agent/deliver"
	"github.com/fileward/fileward/sinks"
	kafkasink "github.com/fileward/fileward/sinks/kafka"
)

// Backoff is the retry schedule for undelivered events.
type Backoff struct {
	Initial    time.Duration // default 500ms
	Max        time.Duration // default 30s
	Multiplier float64       // default 2
	Jitter     float64       // 0..1, default 0.5
}

// Options configures Run. Zero values take the documented defaults.
type Options struct {
	Brokers []string // bootstrap brokers, host:port; required
	Topic   string   // required
	GroupID string   // consumer group; required
	TLS     TLS
	SASL    SASL

	// Sink receives the events; normally the Elasticsearch sink. Run does
	// not close it.
	Sink sinks.Sink

	BatchEvents int // events per Sink.Send; default 2048
	// Workers is the most bulk requests in flight at once (agent/deliver,
	// as the agent's shippers use it); default 2. Sink.Send must be safe
	// for concurrent use above 1.
	Workers   int
	BatchWait time.Duration // how long a partial batch may wait; default 1s
	Backoff   Backoff

	// DeadLetterPath is the NDJSON file refused and malformed messages are
	// appended to (and fsynced) before their offsets are committed.
	// Required.
	DeadLetterPath string

	// SessionTimeout is the consumer group session timeout: how long a
	// crashed collector keeps its partitions before the group rebalances.
	// Default 10s.
	SessionTimeout time.Duration

	Logger     *slog.Logger          // nil discards
	Registerer prometheus.Registerer // nil: metrics are not registered
	// Health, when set, is updated after every delivery attempt.
	Health *Health
}

// Health is the collector's state for /healthz: nil while deliveries
// succeed, else the last error. It is safe for concurrent use.
type Health struct {
	mu  sync.Mutex
	err error
}

// Err returns nil when healthy, else why not.
func (h *Health) Err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

func (h *Health) set(err error) {
	if h == nil {
		return
	}
	h.mu.Lock()
	h.err = err
	h.mu.Unlock()
}

type metrics struct {
	acked, deadLettered, malformed, retries, batches, rebalances, dropped prometheus.Counter
	lag, assignedCount                                                    prometheus.Gauge
	assigned, partLag                                                     *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		acked: prometheus.NewCounter(prometheus.CounterOpts{Name: "fileward_collector_events_acked_total",
			Help: "Events Elasticsearch acknowledged (409 duplicates included)."}),
		deadLettered: prometheus.NewCounter(prometheus.CounterOpts{Name: "fileward_collector_events_dead_lettered_total",
			Help: "Events Elasticsearch refused for good, written to the dead-letter file."}),
		malformed: prometheus.NewCounter(prometheus.CounterOpts{Name: "fileward_collector_messages_malformed_total",
			Help: "Kafka messages that were not ECS JSON with an event.id, written to the dead-letter file."}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{Name: "fileward_collector_retries_total",
			Help: "Delivery attempts that left events to retry."}),
		batches: prometheus.NewCounter(prometheus.CounterOpts{Name: "fileward_collector_batches_committed_total",
			Help: "Batches whose offsets were committed."}),
		rebalances: prometheus.NewCounter(prometheus.CounterOpts{Name: "fileward_collector_rebalances_total",
			Help: "Consumer group generations this collector joined (1 at start, +1 per rebalance)."}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "fileward_collector_revoked_messages_redelivered_total",
			Help: "Messages whose delivery or commit did not finish before their partitions were given up (rebalance or shutdown); their offsets stay uncommitted and the partition's next owner delivers them again."}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{Name: "fileward_collector_lag_messages",
			Help: "Consumer lag summed over the partitions this collector owns, in messages (high watermark minus committed offset)."}),
		assignedCount: prometheus.NewGauge(prometheus.GaugeOpts{Name: "fileward_collector_assigned_partitions",
			Help: "Partitions assigned to this collector in the current consumer group generation (0: idle, e.g. more collectors than partitions)."}),
		assigned: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "fileward_collector_partition_assigned",
			Help: "1 for each topic partition assigned to this collector in the current generation."}, []string{"topic", "partition"}),
		partLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "fileward_collector_partition_lag_messages",
			Help: "Consumer lag of one assigned partition: its high watermark minus the offset this collector last committed."}, []string{"topic", "partition"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.acked, m.deadLettered, m.malformed, m.retries, m.batches,
			m.rebalances, m.dropped, m.lag, m.assignedCount, m.assigned, m.partLag} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("collect: register metrics: %w", err)
			}
		}
	}
	return m, nil
}

// Run consumes Topic as member of GroupID and writes every message to Sink
// until ctx is done; it returns nil then. Batches go through an
// agent/deliver Window (up to Workers bulk requests in flight, per-item
// retry with backoff, a 429 halving the requests in flight), which hands
// them back in order; offsets are committed only past batches whose every
// message was acknowledged by the sink or written to the dead-letter file,
// so a crash re-delivers at most the uncommitted batches, and _id = event.id
// makes Elasticsearch drop the duplicates. Retryable failures are retried
// for as long as it takes. Run returns an error only for bad options or a
// dead-letter file it cannot write.
//
// Each consumer group generation is consumed on its own: readers for exactly
// the assigned partitions, offsets committed with that generation's id (the
// coordinator refuses a commit from an ended generation, so a collector never
// commits a partition it no longer owns). When a rebalance begins, the
// collector stops fetching, finishes the batches in flight within half the
// session timeout, commits them, and only then rejoins; a batch that cannot
// finish in time is left uncommitted for the partition's next owner. When ctx
// is done the same happens before the collector leaves the group.
func Run(ctx context.Context, o Options) error {
	if len(o.Brokers) == 0 || o.Topic == "" || o.GroupID == "" {
		return errors.New("collect: brokers, topic and group_id are required")
	}
	if o.Sink == nil {
		return errors.New("collect: no sink")
	}
	if o.DeadLetterPath == "" {
		return errors.New("collect: dead_letter path is required")
	}
	o.setDefaults()
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return err
	}
	tlsCfg, err := kafkasink.BuildTLS(o.TLS)
	if err != nil {
		return err
	}
	mech, err := kafkasink.BuildSASL(o.SASL)
	if err != nil {
		return err
	}
	dl, err := openDeadLetter(o.DeadLetterPath)
	if err != nil {
		return err
	}
	defer dl.Close()

	dialer := kafkaDialer(tlsCfg, mech)
	kerr := kafka.LoggerFunc(func(f string, a ...any) { log.Warn("collect: kafka: " + fmt.Sprintf(f, a...)) })
	// The group's coordinator connections can be cut at shutdown (see
	// groupConns); the partition readers keep the plain dialer.
	conns := newGroupConns(dialer.Timeout, leaveLimit)
	gdialer := *dialer
	gdialer.DialFunc = conns.DialContext
	cg, err := kafka.NewConsumerGroup(groupConfig(o, &gdialer, kerr))
	if err != nil {
		return fmt.Errorf("collect: consumer group: %w", err)
	}
	// Closing the group leaves it, so the others take over at once. It is
	// closed as soon as ctx is done, while the last generation still
	// finishes its batches: kafka-go then ends that generation and leaves
	// rather than joining a new one.
	left := make(chan struct{})
	leave := sync.OnceFunc(func() {
		go func() {
			_ = cg.Close() // always nil
			close(left)
		}()
	})
	stopLeave := context.AfterFunc(ctx, leave)
	defer func() {
		stopLeave()
		leave()
		awaitLeave(log, left, conns, o.SessionTimeout)
	}()
	log.Info("collect: consuming", "brokers", o.Brokers, "topic", o.Topic, "group_id", o.GroupID, "sasl", kafkasink.MechanismName(o.SASL), "tls", o.TLS.Enabled)

	c := &collector{o: o, dl: dl, m: m, log: log, dialer: dialer, kerr: kerr, lagEvery: 5 * time.Second,
		admin: adminClient(o, tlsCfg, mech)}
	defer c.admin.Transport.(*kafka.Transport).CloseIdleConnections()
	for {
		gen, err := cg.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			log.Warn("collect: join consumer group", "err", err)
			if !sleep(ctx, time.Second) {
				return nil
			}
			continue
		}
		done := make(chan error, 1)
		gen.Start(func(gctx context.Context) { done <- c.generation(ctx, gctx, gen) })
		if err := <-done; err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// kafkaDialer dials the brokers for the group and the partition readers.
func kafkaDialer(tlsCfg *tls.Config, mech sasl.Mechanism) *kafka.Dialer {
	return &kafka.Dialer{Timeout: 10 * time.Second, DualStack: true, TLS: tlsCfg, SASLMechanism: mech}
}

// adminClient reads the log end offsets for the lag gauges.
func adminClient(o Options, tlsCfg *tls.Config, mech sasl.Mechanism) *kafka.Client {
	return &kafka.Client{Addr: kafka.TCP(o.Brokers...), Timeout: 10 * time.Second,
		Transport: &kafka.Transport{DialTimeout: 10 * time.Second, TLS: tlsCfg, SASL: mech, ClientID: "fileward-collector"}}
}

// grace is how long the batches in flight may take to finish once a
// generation ends or the collector stops: half the session timeout (the
// rebalance timeout), so that this member rejoins or leaves in time.
func (o Options) grace() time.Duration { return o.SessionTimeout / 2 }

// setDefaults gives the zero (or negative) sizes and durations their
// documented defaults.
func (o *Options) setDefaults() {
	if o.BatchEvents <= 0 {
		o.BatchEvents = 2048
	}
	if o.BatchWait <= 0 {
		o.BatchWait = time.Second
	}
	if o.Workers <= 0 {
		o.Workers = 2
	}
	if o.SessionTimeout <= 0 {
		o.SessionTimeout = 10 * time.Second
	}
}

func groupConfig(o Options, dialer *kafka.Dialer, kerr kafka.Logger) kafka.ConsumerGroupConfig {
	return kafka.ConsumerGroupConfig{
		ID:                o.GroupID,
		Brokers:           o.Brokers,
		Dialer:            dialer,
		Topics:            []string{o.Topic},
		HeartbeatInterval: max(o.SessionTimeout/5, 100*time.Millisecond),
		SessionTimeout:    o.SessionTimeout,
		RebalanceTimeout:  o.SessionTimeout,
		JoinGroupBackoff:  time.Second,
		// A partition added to the topic triggers a rebalance.
		WatchPartitionChanges:  true,
		PartitionWatchInterval: 30 * time.Second,
		StartOffset:            kafka.FirstOffset,
		Timeout:                10 * time.Second,
		ErrorLogger:            kerr,
	}
}

// readerConfig is the fetch side for one assigned partition.
func readerConfig(o Options, partition int, dialer *kafka.Dialer, kerr kafka.Logger) kafka.ReaderConfig {
	return kafka.ReaderConfig{
		Brokers:   o.Brokers,
		Topic:     o.Topic,
		Partition: partition,
		Dialer:    dialer,
		MinBytes:  1,
		MaxBytes:  4 << 20,
		// kafka-go uses MaxWait as the read deadline for the fetch
		// response, so it must exceed a slow broker's answer time; with
		// MinBytes 1 the broker answers as soon as data is there anyway.
		MaxWait:        5 * time.Second,
		QueueCapacity:  max(100, o.BatchEvents/2),
		ReadBackoffMin: 50 * time.Millisecond,
		ReadBackoffMax: time.Second,
		ErrorLogger:    kerr,
	}
}

type collector struct {
	o      Options
	dl     *deadLetter
	m      *metrics
	log    *slog.Logger
	dialer *kafka.Dialer
	kerr   kafka.Logger
	admin  *kafka.Client // log end offsets, for the lag gauges
	// lagEvery is how often the log end offsets of the assigned
	// partitions are read.
	lagEvery time.Duration
}

// partState is what the collector knows of one assigned partition.
type partState struct {
	hwm       atomic.Int64 // highest log end offset seen; -1 before any
	committed atomic.Int64 // next offset to consume per the group; -1 unknown
}

// generation consumes the partitions gen assigned until the generation ends
// (gctx) or ctx is done. It returns an error only when the collector must
// stop (the dead-letter file cannot be written).
func (c *collector) generation(ctx, gctx context.Context, gen *kafka.Generation) error {
	c.m.rebalances.Inc()
	assigns := gen.Assignments[c.o.Topic]
	parts := make(map[int]*partState, len(assigns))
	ids := make([]int, 0, len(assigns))
	for _, a := range assigns {
		ps := &partState{}
		ps.hwm.Store(-1)
		ps.committed.Store(-1)
		if a.Offset >= 0 {
			ps.committed.Store(a.Offset)
		}
		parts[a.ID] = ps
		ids = append(ids, a.ID)
		c.m.assigned.WithLabelValues(c.o.Topic, strconv.Itoa(a.ID)).Set(1)
	}
	c.m.assignedCount.Set(float64(len(assigns)))
	c.log.Info("collect: partitions assigned", "generation", gen.ID, "member", gen.MemberID, "partitions", ids)
	defer func() {
		// Stopping (ctx) while the generation lasts: Run is closing the
		// group. Return once kafka-go has seen that and ended the
		// generation (it does not wait long), so that it leaves the group
		// instead of joining a new generation first.
		if ctx.Err() != nil && gctx.Err() == nil {
			t := time.NewTimer(time.Second)
			defer t.Stop()
			select {
			case <-gctx.Done():
			case <-t.C:
			}
		}
	}()
	defer func() {
		// Revoked: the next generation publishes its own set.
		c.m.assigned.Reset()
		c.m.partLag.Reset()
		c.m.lag.Set(0)
		c.m.assignedCount.Set(0)
	}()

	// fctx ends fetching: at the end of the generation or of the run.
	fctx, fcancel := context.WithCancel(ctx)
	defer fcancel()
	stopF := context.AfterFunc(gctx, fcancel)
	defer stopF()

	in := make(chan kafka.Message, c.o.BatchEvents)
	var wg sync.WaitGroup
	for _, a := range assigns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.fetch(fctx, a, parts[a.ID], in)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.watchEnds(fctx, parts)
	}()
	defer wg.Wait()
	defer fcancel()

	// The batches in flight are finished even when the generation ends
	// (a rebalance) or the collector stops (SIGTERM), but only within half
	// the session timeout (the rebalance timeout), so that this member
	// rejoins or leaves in time.
	jctx, jcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer jcancel()
	grace := func() { time.AfterFunc(c.o.grace(), jcancel) }
	stopG, stopC := context.AfterFunc(gctx, grace), context.AfterFunc(ctx, grace)
	defer stopG()
	defer stopC()

	fl := &flight{c: c, msgs: map[*byte]*kafka.Message{}}
	w, err := deliver.New(deliver.Options{
		Sink: c.o.Sink, Workers: c.o.Workers, MaxPending: 4 * c.o.Workers,
		Backoff: deliver.Backoff(c.o.Backoff), Logger: c.log,
		Rejected:   fl.rejected,
		Acked:      func(n int) { c.m.acked.Add(float64(n)) },
		Retried:    func(int) { c.m.retries.Inc() },
		SendFailed: fl.sendFailed,
	})
	if err != nil {
		return fmt.Errorf("collect: %w", err)
	}
	defer w.Wait()
	defer jcancel()

	unc := &uncommitted{next: map[int]int64{}}
	for {
		ready := w.Ready()
		if err := c.handBack(ctx, gctx, gen, w, fl, parts, unc); err != nil {
			return err
		}
		fl.health(w)
		if fctx.Err() != nil {
			// Revoked or stopping: no new batches; those in flight
			// finish within the grace.
			if w.Pending() == 0 {
				return nil
			}
			select {
			case <-ready:
			case <-jctx.Done():
				n := fl.pendingMessages()
				c.m.dropped.Add(float64(n))
				c.log.Warn("collect: batches not acknowledged before the partitions were given up; left uncommitted for their next owner", "messages", n)
				return nil // uncommitted: re-delivered, duplicates collapse
			}
			continue
		}
		if w.Full() {
			select {
			case <-ready:
			case <-fctx.Done():
			}
			continue
		}
		msgs := make([]kafka.Message, 0, c.o.BatchEvents) // the window keeps it
		c.fill(fctx, in, &msgs, ready)
		c.publishLag(parts)
		if len(msgs) == 0 {
			continue
		}
		b, err := fl.prepare(msgs)
		if err != nil {
			return err // the dead-letter file
		}
		if err := w.Submit(jctx, b); err != nil {
			continue // the grace ended: the loop above gives up
		}
	}
}

// uncommitted holds the offsets of a generation whose commit failed while
// the generation lasted (a broker gone, the coordinator moving): they go
// into the next commit, or are retried on their own every retryEvery while
// no batch completes, so a refused commit is made good without new traffic.
type uncommitted struct {
	next    map[int]int64
	lastTry time.Time
}

// retryEvery paces the retries of an uncommitted commit with no new batch.
const retryEvery = 5 * time.Second

// handBack takes the batches the window completed, in order, makes their
// dead-letter records durable and commits the offsets after them, with any
// left uncommitted by a failed commit of this generation.
func (c *collector) handBack(ctx, gctx context.Context, gen *kafka.Generation, w *deliver.Window, fl *flight, parts map[int]*partState, unc *uncommitted) error {
	next := map[int]int64{}
	batches, msgs := 0, 0
	for {
		d, ok := w.Next()
		if !ok {
			break
		}
		b := d.Tag.(*inFlight)
		for p, o := range b.next {
			next[p] = max(next[p], o)
		}
		batches++
		msgs += len(b.msgs)
		fl.forget(b)
	}
	if batches == 0 && (len(unc.next) == 0 || time.Since(unc.lastTry) < retryEvery) {
		return nil
	}
	if err := fl.failed(); err != nil {
		return err
	}
	if err := c.dl.sync(); err != nil {
		return err
	}
	for p, o := range unc.next {
		next[p] = max(next[p], o)
	}
	unc.lastTry = time.Now()
	if err := c.commit(ctx, gctx, gen, next, parts); err != nil {
		if ctx.Err() == nil && gctx.Err() == nil {
			// A broker gone: the offsets go into the next commit; a
			// crash before then re-delivers the batches, and
			// duplicates collapse.
			unc.next = next
			c.log.Warn("collect: commit offsets failed; the batches may be re-delivered", "generation", gen.ID, "err", err)
		} else {
			c.m.dropped.Add(float64(msgs))
			c.log.Warn("collect: commit refused after the generation ended; the batches will be re-delivered", "generation", gen.ID, "err", err)
		}
	} else {
		c.m.batches.Add(float64(batches))
		if len(unc.next) > 0 {
			c.log.Info("collect: offsets committed after earlier failures", "generation", gen.ID)
			unc.next = map[int]int64{}
		}
	}
	c.publishLag(parts)
	return nil
}

// inFlight is one batch in the window: its messages, and the offset to
// commit for each partition once it is complete.
type inFlight struct {
	msgs   []kafka.Message
	events []sinks.Event
	next   map[int]int64
}

// flight tracks the messages behind the events in the window, so that an
// event Elasticsearch refuses is dead-lettered with its Kafka coordinates.
// Events are known by the address of their document's first byte, which is
// unique among the events in flight.
type flight struct {
	c *collector

	mu      sync.Mutex
	msgs    map[*byte]*kafka.Message
	pending int   // messages in batches not yet handed back
	dlErr   error // the first dead-letter write that failed
	sendErr error // the last failed Send, for /healthz
}

// prepare turns messages into a window batch; malformed messages go to the
// dead-letter file at once.
func (f *flight) prepare(msgs []kafka.Message) (deliver.Batch, error) {
	b := &inFlight{msgs: msgs, events: make([]sinks.Event, 0, len(msgs)), next: map[int]int64{}}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range msgs {
		m := &msgs[i]
		b.next[m.Partition] = max(b.next[m.Partition], m.Offset+1)
		ev, err := toEvent(m)
		if err != nil {
			f.c.m.malformed.Inc()
			if err := f.c.dl.write(m, "", "malformed", err); err != nil {
				return deliver.Batch{}, err
			}
			continue
		}
		b.events = append(b.events, ev)
		f.msgs[&ev.Doc[0]] = m
	}
	f.pending += len(msgs)
	return deliver.Batch{Events: b.events, Tag: b}, nil
}

func (f *flight) forget(b *inFlight) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range b.events {
		delete(f.msgs, &b.events[i].Doc[0])
	}
	f.pending -= len(b.msgs)
}

func (f *flight) pendingMessages() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pending
}

// rejected is the window's Rejected: dead-letter each refused event.
func (f *flight) rejected(events []sinks.Event, errs []error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range events {
		f.c.m.deadLettered.Inc()
		m := f.msgs[&events[i].Doc[0]]
		if m == nil {
			m = &kafka.Message{Topic: f.c.o.Topic, Partition: -1, Offset: -1, Value: events[i].Doc}
		}
		if err := f.c.dl.write(m, events[i].ID, "rejected", errs[i]); err != nil && f.dlErr == nil {
			f.dlErr = err
		}
	}
}

func (f *flight) failed() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dlErr
}

func (f *flight) sendFailed(err error) {
	f.mu.Lock()
	f.sendErr = err
	f.mu.Unlock()
}

// health sets /healthz from the window: degraded while a batch waits after
// an attempt that delivered nothing.
func (f *flight) health(w *deliver.Window) {
	if w.Healthy() {
		f.c.o.Health.set(nil)
		return
	}
	f.mu.Lock()
	err := f.sendErr
	f.mu.Unlock()
	if err == nil {
		err = errors.New("elasticsearch: events refused; retrying")
	}
	f.c.o.Health.set(err)
}

// fetch reads one assigned partition from its group offset into in until
// ctx is done.
func (c *collector) fetch(ctx context.Context, a kafka.PartitionAssignment, ps *partState, in chan<- kafka.Message) {
	r := kafka.NewReader(readerConfig(c.o, a.ID, c.dialer, c.kerr))
	defer func() {
		if err := r.Close(); err != nil {
			c.log.Warn("collect: close partition reader", "partition", a.ID, "err", err)
		}
	}()
	if err := r.SetOffset(a.Offset); err != nil {
		c.log.Warn("collect: set offset", "partition", a.ID, "offset", a.Offset, "err", err)
		return
	}
	for {
		msg, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			c.log.Warn("collect: fetch", "partition", a.ID, "err", err)
			if !sleep(ctx, time.Second) {
				return
			}
			continue
		}
		ps.seeEnd(msg.HighWaterMark)
		ps.committed.CompareAndSwap(-1, msg.Offset) // no commit yet: lag from the first offset
		select {
		case in <- msg:
		case <-ctx.Done():
			return
		}
	}
}

// seeEnd raises the partition's known log end offset to end.
func (ps *partState) seeEnd(end int64) {
	for {
		cur := ps.hwm.Load()
		if end <= cur || ps.hwm.CompareAndSwap(cur, end) {
			return
		}
	}
}

// watchEnds reads the log end offsets of the assigned partitions every
// lagEvery until ctx is done, so the lag gauges keep growing while the
// collector is stuck (Elasticsearch down) and its fetchers wait.
func (c *collector) watchEnds(ctx context.Context, parts map[int]*partState) {
	if len(parts) == 0 {
		return
	}
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for p := range parts {
		req.Topics[c.o.Topic] = append(req.Topics[c.o.Topic], kafka.LastOffsetOf(p))
	}
	t := time.NewTicker(c.lagEvery)
	defer t.Stop()
	for {
		res, err := c.admin.ListOffsets(ctx, req)
		if err == nil {
			for _, po := range res.Topics[c.o.Topic] {
				if ps := parts[po.Partition]; ps != nil && po.Error == nil {
					ps.seeEnd(po.LastOffset)
				}
			}
			c.publishLag(parts)
		} else if ctx.Err() == nil {
			c.log.Debug("collect: list offsets for the lag gauges", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// leaveLimit bounds each connection the consumer group dials after its
// connections were cut at shutdown: time enough for a LeaveGroup.
const leaveLimit = 3 * time.Second

// awaitLeave waits for the consumer group to close (left). If kafka-go is
// still inside a group request a second later (a JoinGroup or SyncGroup held
// open by a slow rebalance; Close does not abort it), the group's
// connections are cut so that request fails now and kafka-go leaves the
// group on a new, bounded connection. If even that does not finish, the
// collector exits anyway: its offsets are committed, and the coordinator
// drops the member after the session timeout.
func awaitLeave(log *slog.Logger, left <-chan struct{}, conns *groupConns, session time.Duration) {
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-left:
		return
	case <-t.C:
	}
	n := conns.cutAll()
	log.Info("collect: a consumer group request was still in flight at shutdown (a rebalance); its connection is cut so this member leaves the group now", "connections", n)
	t.Reset(2*leaveLimit + time.Second) // FindCoordinator, then LeaveGroup
	select {
	case <-left:
	case <-t.C:
		log.Warn("collect: could not leave the consumer group in time; the coordinator drops this member after the session timeout", "session_timeout", session)
	}
}

// commit commits next (partition -> offset) with this generation's id. It
// retries briefly while the generation lasts.
func (c *collector) commit(ctx, gctx context.Context, gen *kafka.Generation, next map[int]int64, parts map[int]*partState) error {
	var err error
	for attempt := range 3 {
		if attempt > 0 && (gctx.Err() != nil || !sleep(ctx, time.Duration(attempt)*200*time.Millisecond)) {
			break
		}
		if err = gen.CommitOffsets(map[string]map[int]int64{c.o.Topic: next}); err == nil {
			for p, o := range next {
				if ps := parts[p]; ps != nil {
					ps.committed.Store(o)
				}
			}
			return nil
		}
	}
	return err
}

// publishLag sets the lag gauges from the partitions' last high watermarks
// and committed offsets.
func (c *collector) publishLag(parts map[int]*partState) {
	var sum int64
	for p, ps := range parts {
		hwm, com := ps.hwm.Load(), ps.committed.Load()
		if hwm < 0 || com < 0 {
			continue // nothing fetched yet: unknown
		}
		lag := max(hwm-com, 0)
		sum += lag
		c.m.partLag.WithLabelValues(c.o.Topic, strconv.Itoa(p)).Set(float64(lag))
	}
	c.m.lag.Set(float64(sum))
}

// fill blocks for the first message (giving up after 5s, so the caller
// refreshes the lag gauges, or when ready is closed, so it hands back
// completed batches), then adds messages until the batch is full,
// BatchWait has passed since the first, or ctx is done.
func (c *collector) fill(ctx context.Context, in <-chan kafka.Message, msgs *[]kafka.Message, ready <-chan struct{}) {
	idle := time.NewTimer(5 * time.Second)
	defer idle.Stop()
	select {
	case <-ctx.Done():
		return
	case <-idle.C:
		return
	case <-ready:
		return
	case msg := <-in:
		*msgs = append(*msgs, msg)
	}
	wait := time.NewTimer(c.o.BatchWait)
	defer wait.Stop()
	for len(*msgs) < c.o.BatchEvents {
		select {
		case <-ctx.Done():
			return
		case <-wait.C:
			return
		case msg := <-in:
			*msgs = append(*msgs, msg)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// toEvent turns a message into a sink event: the id from the event.id
// header, else from the document's event.id; the key is the message key
// (host.id).
func toEvent(m *kafka.Message) (sinks.Event, error) {
	doc := bytes.TrimSpace(m.Value)
	if len(doc) == 0 || doc[0] != '{' || !json.Valid(doc) {
		return sinks.Event{}, errors.New("value is not a JSON object")
	}
	if bytes.IndexByte(doc, '\n') >= 0 {
		var buf bytes.Buffer
		if err := json.Compact(&buf, doc); err != nil {
			return sinks.Event{}, fmt.Errorf("compact: %w", err)
		}
		doc = buf.Bytes()
	}
	id := ""
	for _, h := range m.Headers {
		if h.Key == "event.id" {
			id = string(h.Value)
			break
		}
	}
	if id == "" {
		var d struct {
			Event struct {
				ID string `json:"id"`
			} `json:"event"`
			Flat string `json:"event.id"`
		}
		if err := json.Unmarshal(doc, &d); err != nil {
			return sinks.Event{}, fmt.Errorf("decode: %w", err)
		}
		id = d.Event.ID
		if id == "" {
			id = d.Flat
		}
	}
	if id == "" {
		return sinks.Event{}, errors.New("no event.id header and no event.id field")
	}
	return sinks.Event{ID: id, Key: string(m.Key), Doc: doc}, nil
}

// deadLetter appends one JSON line per refused message.
type deadLetter struct {
	mu    sync.Mutex // writes come from the window's goroutines too
	f     *os.File
	dirty bool
}

// openDeadLetter opens the dead-letter file: it holds event data, so it is
// 0600 in a 0700 directory, as the spool is (a file left wider by an earlier
// version is narrowed; an existing directory is left as it is).
func openDeadLetter(path string) (*deadLetter, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("collect: dead-letter dir: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("collect: open dead-letter file: %w", err)
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return nil, fmt.Errorf("collect: dead-letter file permissions: %w", err)
	}
	return &deadLetter{f: f}, nil
}

type dlRecord struct {
	Time      string          `json:"time"`
	Reason    string          `json:"reason"` // malformed | rejected
	Error     string          `json:"error"`
	Topic     string          `json:"topic"`
	Partition int             `json:"partition"`
	Offset    int64           `json:"offset"`
	EventID   string          `json:"event_id,omitempty"`
	Doc       json.RawMessage `json:"doc,omitempty"`
	Raw       string          `json:"raw,omitempty"` // the value when it is not JSON
}

func (d *deadLetter) write(m *kafka.Message, id, reason string, cause error) error {
	rec := dlRecord{Time: time.Now().UTC().Format(time.RFC3339Nano), Reason: reason, Error: cause.Error(),
		Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, EventID: id}
	if json.Valid(m.Value) {
		var buf bytes.Buffer
		if json.Compact(&buf, m.Value) == nil {
			rec.Doc = buf.Bytes()
		}
	}
	if rec.Doc == nil {
		rec.Raw = string(m.Value)
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("collect: dead-letter record: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := d.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("collect: write dead-letter file: %w", err)
	}
	d.dirty = true
	return nil
}

// sync makes dead-lettered records durable before their offsets commit.
func (d *deadLetter) sync() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.dirty {
		return nil
	}
	if err := d.f.Sync(); err != nil {
		return fmt.Errorf("collect: fsync dead-letter file: %w", err)
	}
	d.dirty = false
	return nil
}

func (d *deadLetter) Close() error { return d.f.Close() }
