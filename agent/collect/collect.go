package collect

import (
	"bytes"
	"context"
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

	"github.com/cenkalti/backoff/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

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

	BatchEvents int           // events per Sink.Send; default 2048
	BatchWait   time.Duration // how long a partial batch may wait; default 1s
	Backoff     Backoff

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
// until ctx is done; it returns nil then. Offsets are committed only once
// every message of a batch is acknowledged by the sink or written to the
// dead-letter file, so a crash re-delivers at most the uncommitted batch, and
// _id = event.id makes Elasticsearch drop the duplicates. Retryable failures
// are retried with backoff for as long as it takes. Run returns an error only
// for bad options or a dead-letter file it cannot write.
//
// Each consumer group generation is consumed on its own: readers for exactly
// the assigned partitions, offsets committed with that generation's id (the
// coordinator refuses a commit from an ended generation, so a collector never
// commits a partition it no longer owns). When a rebalance begins, the
// collector stops fetching, finishes the batch in flight within half the
// session timeout, commits it, and only then rejoins; a batch that cannot
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
	if o.BatchEvents <= 0 {
		o.BatchEvents = 2048
	}
	if o.BatchWait <= 0 {
		o.BatchWait = time.Second
	}
	if o.SessionTimeout <= 0 {
		o.SessionTimeout = 10 * time.Second
	}
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

	dialer := &kafka.Dialer{Timeout: 10 * time.Second, DualStack: true, TLS: tlsCfg, SASLMechanism: mech}
	kerr := kafka.LoggerFunc(func(f string, a ...any) { log.Warn("collect: kafka: " + fmt.Sprintf(f, a...)) })
	cg, err := kafka.NewConsumerGroup(groupConfig(o, dialer, kerr))
	if err != nil {
		return fmt.Errorf("collect: consumer group: %w", err)
	}
	defer func() {
		// Close leaves the group, so the others take over at once.
		if err := cg.Close(); err != nil {
			log.Warn("collect: leave consumer group", "err", err)
		}
	}()
	log.Info("collect: consuming", "brokers", o.Brokers, "topic", o.Topic, "group_id", o.GroupID, "sasl", kafkasink.MechanismName(o.SASL), "tls", o.TLS.Enabled)

	c := &collector{o: o, dl: dl, m: m, log: log, dialer: dialer, kerr: kerr, lagEvery: 5 * time.Second,
		admin: &kafka.Client{Addr: kafka.TCP(o.Brokers...), Timeout: 10 * time.Second,
			Transport: &kafka.Transport{DialTimeout: 10 * time.Second, TLS: tlsCfg, SASL: mech, ClientID: "fileward-collector"}}}
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

	msgs := make([]kafka.Message, 0, c.o.BatchEvents)
	for {
		msgs = msgs[:0]
		c.fill(fctx, in, &msgs)
		c.publishLag(parts)
		if len(msgs) == 0 {
			if fctx.Err() != nil {
				return nil
			}
			continue
		}
		// The batch in flight is finished even when the generation ends
		// (a rebalance) or the collector stops (SIGTERM) meanwhile, but
		// only within half the session timeout (the rebalance timeout),
		// so that this member rejoins or leaves in time.
		dctx, dcancel := context.WithCancel(context.WithoutCancel(ctx))
		grace := func() { time.AfterFunc(c.o.SessionTimeout/2, dcancel) }
		stopG, stopC := context.AfterFunc(gctx, grace), context.AfterFunc(ctx, grace)
		err := c.deliver(dctx, msgs)
		stopG()
		stopC()
		dcancel()
		if err != nil {
			if dctx.Err() == nil {
				return err // the dead-letter file
			}
			c.m.dropped.Add(float64(len(msgs)))
			c.log.Warn("collect: batch not acknowledged before the partitions were given up; left uncommitted for their next owner", "messages", len(msgs))
			return nil // uncommitted: re-delivered, duplicates collapse
		}
		if err := c.commit(ctx, gctx, gen, msgs, parts); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if gctx.Err() != nil {
				c.m.dropped.Add(float64(len(msgs)))
			}
			// A refused commit (the generation ended) or a broker gone
			// only means the batch will be delivered again, and
			// duplicates collapse.
			c.log.Warn("collect: commit offsets failed; the batch may be re-delivered", "generation", gen.ID, "err", err)
		} else {
			c.m.batches.Inc()
		}
		c.publishLag(parts)
		if fctx.Err() != nil {
			return nil
		}
	}
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

// commit commits, with this generation's id, the offset after the last
// message of each partition in msgs. It retries briefly while the
// generation lasts.
func (c *collector) commit(ctx, gctx context.Context, gen *kafka.Generation, msgs []kafka.Message, parts map[int]*partState) error {
	next := map[int]int64{}
	for i := range msgs {
		if o := msgs[i].Offset + 1; o > next[msgs[i].Partition] {
			next[msgs[i].Partition] = o
		}
	}
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
// refreshes the lag gauges), then adds messages until the batch is full,
// BatchWait has passed since the first, or ctx is done.
func (c *collector) fill(ctx context.Context, in <-chan kafka.Message, msgs *[]kafka.Message) {
	idle := time.NewTimer(5 * time.Second)
	defer idle.Stop()
	select {
	case <-ctx.Done():
		return
	case <-idle.C:
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

// deliver returns once every message is acknowledged or dead-lettered, or
// ctx is done.
func (c *collector) deliver(ctx context.Context, msgs []kafka.Message) error {
	events := make([]sinks.Event, 0, len(msgs))
	origin := make([]int, 0, len(msgs)) // event index -> message index
	for i := range msgs {
		ev, err := toEvent(&msgs[i])
		if err != nil {
			c.m.malformed.Inc()
			if err := c.dl.write(&msgs[i], "", "malformed", err); err != nil {
				return err
			}
			continue
		}
		events = append(events, ev)
		origin = append(origin, i)
	}
	if err := c.dl.sync(); err != nil {
		return err
	}
	bo := newBackoff(c.o.Backoff)
	pending := &sinks.Batch{Events: events}
	for len(pending.Events) > 0 {
		res, err := c.o.Sink.Send(ctx, pending)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil && sinks.IsPermanent(err) {
			// The whole request was refused for good: dead-letter all.
			for k := range pending.Events {
				c.m.deadLettered.Inc()
				if err := c.dl.write(&msgs[origin[k]], pending.Events[k].ID, "rejected", err); err != nil {
					return err
				}
			}
			pending.Events = nil
			break
		}
		var retry []sinks.Event
		var retryOrigin []int
		var lastErr error
		if err != nil {
			retry, retryOrigin, lastErr = pending.Events, origin, err
		} else {
			failed := make(map[int]bool, len(res.Failures))
			for _, f := range res.Failures {
				if f.Index < 0 || f.Index >= len(pending.Events) || failed[f.Index] {
					continue
				}
				failed[f.Index] = true
				if sinks.IsPermanent(f.Err) {
					c.m.deadLettered.Inc()
					if err := c.dl.write(&msgs[origin[f.Index]], pending.Events[f.Index].ID, "rejected", f.Err); err != nil {
						return err
					}
					continue
				}
				retry = append(retry, pending.Events[f.Index])
				retryOrigin = append(retryOrigin, origin[f.Index])
				lastErr = f.Err
			}
			c.m.acked.Add(float64(len(pending.Events) - len(failed)))
		}
		if len(retry) == 0 {
			break
		}
		c.m.retries.Inc()
		c.o.Health.set(lastErr)
		d := bo.NextBackOff()
		c.log.Warn("collect: events not delivered; retrying", "events", len(retry), "in", d, "err", lastErr)
		if !sleep(ctx, d) {
			return ctx.Err()
		}
		pending = &sinks.Batch{Events: retry}
		origin = retryOrigin
	}
	if err := c.dl.sync(); err != nil {
		return err
	}
	c.o.Health.set(nil)
	return nil
}

func newBackoff(b Backoff) *backoff.ExponentialBackOff {
	e := backoff.NewExponentialBackOff()
	e.InitialInterval = b.Initial
	if e.InitialInterval <= 0 {
		e.InitialInterval = 500 * time.Millisecond
	}
	e.MaxInterval = b.Max
	if e.MaxInterval <= 0 {
		e.MaxInterval = 30 * time.Second
	}
	e.Multiplier = b.Multiplier
	if e.Multiplier < 1 {
		e.Multiplier = 2
	}
	e.RandomizationFactor = b.Jitter
	if b.Jitter < 0 || b.Jitter > 1 {
		e.RandomizationFactor = 0.5
	}
	e.MaxElapsedTime = 0 // retry forever: Kafka holds the data
	e.Reset()
	return e
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
	if _, err := d.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("collect: write dead-letter file: %w", err)
	}
	d.dirty = true
	return nil
}

// sync makes dead-lettered records durable before their offsets commit.
func (d *deadLetter) sync() error {
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
