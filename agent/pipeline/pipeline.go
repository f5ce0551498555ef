package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fileward/fileward/agent/capture"
	"github.com/fileward/fileward/schema"
	"github.com/fileward/fileward/sinks"
)

// Output receives encoded batches (sinks batch bytes, see sinks.BatchWriter).
// The spool implements it. Append may refuse a batch when the spool is full
// or the disk is; the spool counts those events itself, and the pipeline
// only logs the refusal and goes on.
type Output interface {
	Append(ctx context.Context, payload []byte, events int) error
}

// LossLedger is implemented by an Output that keeps loss reports safe (the
// spool): AppendReport stores a batch of loss documents together with the
// counts they carry, by reason name, and the cumulative totals they state;
// if the batch is later dropped unread, the Output hands its counts back
// (the agent adds them to Options.Returned). LossTotals returns the totals
// stored by the last AppendReport, also after a restart.
type LossLedger interface {
	AppendReport(ctx context.Context, payload []byte, events int, counts, totals map[string]uint64) error
	LossTotals() map[string]uint64
}

// Options configures a Pipeline.
type Options struct {
	Ring  *capture.Ring
	Drops *capture.Drops
	// Returned counts losses that were reported, but whose report was
	// dropped before delivery (see LossLedger): the next report carries
	// them again. They are not new losses, so they are not in Drops.
	// Optional.
	Returned *capture.Drops
	Encoder  *schema.Encoder
	Output   Output
	Rules    Rules

	// AggregateWindow folds repeats within this window; 0 disables.
	AggregateWindow time.Duration
	// AggregateMax bounds the keys held by aggregation (default 65536).
	AggregateMax int
	// SourceAggregated are the actions the source already aggregates
	// exactly within the window (eBPF's kernel map: open, close,
	// modification). The pipeline emits them without holding them: holding
	// them again would only cost memory (up to AggregateMax whole events).
	SourceAggregated []schema.Action

	BatchEvents int
	BatchBytes  int
	BatchWait   time.Duration

	// Enrich fills process fields the source could not (fanotify gives only
	// a pid). It is called for events without an executable and for every
	// exec event (whose source may know only the new image's executable).
	// It returns false when the process is gone. Optional; set it only for
	// sources that need it.
	Enrich func(ev *schema.Event) bool

	// Heartbeat is the interval of heartbeat events; 0 disables them.
	Heartbeat time.Duration
	// Stats feeds heartbeat counters. Optional.
	Stats func(h *schema.Heartbeat)

	// Now is the clock (default time.Now); tests inject their own.
	Now func() time.Time
	// Tick is the housekeeping interval for aggregation expiry, batch
	// deadlines and loss reports (default 50ms).
	Tick time.Duration

	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Pipeline moves events from the ring to the Output.
type Pipeline struct {
	o      Options
	log    *slog.Logger
	filter *filter
	agg    *aggregator
	key    string // host.id, the batch key

	pending pendingUpdate // a Reconfigure call Run has not applied yet

	w          sinks.BatchWriter
	idBuf      []byte
	docBuf     []byte
	batchStart time.Time

	// reported is how much of each loss reason (Drops plus Returned) is
	// already in the stream.
	reported [schema.LossReasonCount]uint64
	// ledger is o.Output as a LossLedger, or nil; base are the cumulative
	// totals of earlier runs, from the ledger.
	ledger    LossLedger
	base      [schema.LossReasonCount]uint64
	lossSeq   uint64
	hbSeq     uint64
	lastHB    time.Time
	lastLoss  time.Time
	refusedAt time.Time

	filtered   prometheus.Counter
	aggregated prometheus.Counter
	unresolved prometheus.Counter
	emitted    prometheus.Counter
	appendErrs prometheus.Counter
}

// New checks o and builds a Pipeline.
func New(o Options) (*Pipeline, error) {
	if o.Ring == nil || o.Drops == nil || o.Encoder == nil || o.Output == nil {
		return nil, errors.New("pipeline: Ring, Drops, Encoder and Output are required")
	}
	if o.BatchEvents < 1 {
		o.BatchEvents = 2048
	}
	if o.BatchBytes < 1024 {
		o.BatchBytes = 1 << 20
	}
	if o.BatchWait <= 0 {
		o.BatchWait = time.Second
	}
	if o.AggregateMax < 1 {
		o.AggregateMax = 65536
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Tick <= 0 {
		o.Tick = 50 * time.Millisecond
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Pipeline{
		o:      o,
		log:    log,
		filter: newFilter(o.Rules),
		key:    o.Encoder.Meta().HostID,
		filtered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fileward_events_filtered_total", Help: "Events dropped on purpose by filters and mute rules (not a loss).",
		}),
		aggregated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fileward_events_aggregated_total", Help: "Raw events folded into another event's fileward.count (not a loss).",
		}),
		unresolved: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fileward_process_unresolved_total", Help: "Events whose process exited before it could be enriched (the pid is kept).",
		}),
		emitted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fileward_events_encoded_total", Help: "ECS documents the pipeline encoded, loss and heartbeat events included.",
		}),
		appendErrs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fileward_pipeline_append_refused_total", Help: "Batches the spool refused (full disk or drop_newest); their events are counted as spool_full.",
		}),
	}
	if o.Returned == nil {
		o.Returned = &capture.Drops{}
		p.o.Returned = o.Returned
	}
	if l, ok := o.Output.(LossLedger); ok {
		p.ledger = l
		for name, n := range l.LossTotals() {
			if r, ok := schema.ParseLossReason(name); ok {
				p.base[r] = n
			}
		}
	}
	if o.AggregateWindow > 0 {
		p.agg = newAggregator(int64(o.AggregateWindow), o.AggregateMax)
	}
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{p.filtered, p.aggregated, p.unresolved, p.emitted, p.appendErrs} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("pipeline: register metrics: %w", err)
			}
		}
	}
	p.w.Reset(p.key)
	return p, nil
}

// gatherPause is how long Run waits after a burst that emptied the ring.
// It bounds the latency it adds; against waking per push it cut the
// capturing side's CPU per event by about a tenth, and the workload's
// slowdown by about 3 points, in fanotify's BenchmarkCaptureOverhead.
const gatherPause = time.Millisecond

// Run pops the ring until ctx is done. Then it drains what the ring still
// holds, flushes aggregation and the open batch to the Output, reports any
// remaining losses, and returns nil. Cancel ctx only after the source has
// stopped, so that the drain sees everything.
func (p *Pipeline) Run(ctx context.Context) error {
	tick := time.NewTicker(p.o.Tick)
	defer tick.Stop()
	now := p.o.Now()
	p.lastHB, p.lastLoss = now, now
	var ev capture.Event
	for {
		got, fired := p.o.Ring.PopOr(ctx, tick.C, &ev)
		if p.pending.p.Load() != nil {
			p.applyPending(ctx)
		}
		switch {
		case fired:
			p.housekeep(ctx, false)
		case got:
			p.handle(ctx, &ev)
			// Take what is queued without going back to select each time.
			n := 1
			for ; n <= 256 && p.o.Ring.TryPop(&ev); n++ {
				p.handle(ctx, &ev)
			}
			if n > 1 && n <= 256 {
				// A burst that emptied the ring: let the source queue the
				// next one instead of waking this goroutine for each push.
				time.Sleep(gatherPause)
			}
		default: // ctx is done
			return p.drain()
		}
	}
}

func (p *Pipeline) drain() error {
	ctx := context.Background() // the spool's Append must still run during shutdown
	var ev capture.Event
	for p.o.Ring.TryPop(&ev) {
		p.handle(ctx, &ev)
	}
	p.housekeep(ctx, true)
	return nil
}

// handle filters, enriches and aggregates one event.
func (p *Pipeline) handle(ctx context.Context, ev *capture.Event) {
	if ev.Action == schema.ActionNone {
		return
	}
	if !p.filter.keepPath(ev) {
		// An exec the path rules drop (/usr/bin/cat outside include_paths)
		// still feeds the exec cache first: the process's later events,
		// which the rules keep, need its executable once it has exited.
		if p.o.Enrich != nil && ev.Action == schema.ActionExec && ev.Process.PID > 0 {
			p.o.Enrich(ev)
		}
		p.filtered.Inc()
		return
	}
	// An exec event may carry its new image's executable from the source
	// and still need the rest of its process fields.
	if p.o.Enrich != nil && (ev.Process.Executable == "" || ev.Action == schema.ActionExec) && ev.Process.PID > 0 {
		if !p.o.Enrich(ev) {
			p.unresolved.Inc()
		}
	}
	if !p.filter.keepProcess(ev) {
		p.filtered.Inc()
		return
	}
	if p.agg == nil || slices.Contains(p.o.SourceAggregated, ev.Action) {
		p.emit(ctx, ev)
		return
	}
	if p.agg.add(ev, p.o.Now().UnixNano(), func(e *schema.Event) { p.emit(ctx, e) }) {
		p.aggregated.Inc()
	}
}

// emit encodes one event into the open batch. The event.id is computed
// once, by the encoder, and taken from the document.
func (p *Pipeline) emit(ctx context.Context, ev *schema.Event) {
	var at int
	p.docBuf, at = p.o.Encoder.AppendWithID(p.docBuf[:0], ev)
	p.addDoc(ctx, p.docBuf[at:at+schema.IDLen], p.docBuf)
}

// add puts idBuf/docBuf into the batch, flushing first if they would not fit.
func (p *Pipeline) add(ctx context.Context) { p.addDoc(ctx, p.idBuf, p.docBuf) }

// addDoc puts id and doc into the batch, flushing first if they would not
// fit.
func (p *Pipeline) addDoc(ctx context.Context, id, doc []byte) {
	if p.w.Len() > 0 && p.w.Size()+len(doc)+len(id)+16 > p.o.BatchBytes {
		p.flush(ctx)
	}
	if p.w.Len() == 0 {
		p.batchStart = p.o.Now()
	}
	p.w.Add(id, doc)
	p.emitted.Inc()
	if p.w.Len() >= p.o.BatchEvents {
		p.flush(ctx)
	}
}

// flush hands the open batch to the Output.
func (p *Pipeline) flush(ctx context.Context) {
	if p.w.Len() == 0 {
		return
	}
	n := p.w.Len()
	if err := p.o.Output.Append(ctx, p.w.Bytes(), n); err != nil {
		p.appendErrs.Inc()
		// The spool has counted these events as lost; say so at most once a second.
		if now := p.o.Now(); now.Sub(p.refusedAt) >= time.Second {
			p.refusedAt = now
			p.log.Warn("spool refused a batch; its events are counted as spool_full", "events", n, "err", err)
		}
	}
	p.w.Reset(p.key)
}

// housekeep expires aggregation, reports losses, writes heartbeats and
// flushes a batch whose wait is over. final flushes everything.
func (p *Pipeline) housekeep(ctx context.Context, final bool) {
	now := p.o.Now()
	if p.agg != nil {
		emit := func(e *schema.Event) { p.emit(ctx, e) }
		if final {
			p.agg.flush(emit)
		} else {
			p.agg.expire(now.UnixNano(), emit)
		}
	}
	if final || now.Sub(p.lastLoss) >= time.Second {
		p.lastLoss = now
		p.reportLosses(ctx, now)
	}
	if p.o.Heartbeat > 0 && now.Sub(p.lastHB) >= p.o.Heartbeat {
		p.lastHB = now
		p.heartbeat(ctx, now)
	}
	if final || (p.w.Len() > 0 && now.Sub(p.batchStart) >= p.o.BatchWait) {
		p.flush(ctx)
	}
}

// reportLosses puts one events_lost document per reason whose counter moved
// since the last report into a batch of its own. If the spool refuses that
// batch, nothing is marked reported, so the next report carries the sum.
// Each document carries the cumulative totals of every reason.
func (p *Pipeline) reportLosses(ctx context.Context, now time.Time) {
	var pending, totals [schema.LossReasonCount]uint64
	moved := false
	for r := schema.LossReason(0); r < schema.LossReasonCount; r++ {
		d := p.o.Drops.Load(r)
		pending[r] = d + p.o.Returned.Load(r)
		totals[r] = p.base[r] + d
		if pending[r] > p.reported[r] {
			moved = true
		}
	}
	if !moved {
		return
	}
	p.flush(ctx) // loss events travel in their own batch
	seq := p.lossSeq
	counts := map[string]uint64{}
	for r := schema.LossReason(0); r < schema.LossReasonCount; r++ {
		if pending[r] <= p.reported[r] {
			continue
		}
		seq++
		l := schema.Loss{TimeNS: now.UnixNano(), Reason: r, Count: pending[r] - p.reported[r], Seq: seq, Totals: &totals}
		counts[r.String()] = l.Count
		p.idBuf = p.o.Encoder.AppendLossID(p.idBuf[:0], &l)
		p.docBuf = p.o.Encoder.AppendLoss(p.docBuf[:0], &l)
		p.w.Add(p.idBuf, p.docBuf)
		p.emitted.Inc()
		p.log.Warn("events lost", "reason", r.String(), "count", l.Count)
	}
	n := p.w.Len()
	var err error
	if p.ledger != nil {
		tm := make(map[string]uint64, len(totals))
		for r, v := range totals {
			tm[schema.LossReason(r).String()] = v
		}
		err = p.ledger.AppendReport(ctx, p.w.Bytes(), n, counts, tm)
	} else {
		err = p.o.Output.Append(ctx, p.w.Bytes(), n)
	}
	p.w.Reset(p.key)
	if err != nil {
		p.appendErrs.Inc()
		return
	}
	p.lossSeq = seq
	p.reported = pending
}

func (p *Pipeline) heartbeat(ctx context.Context, now time.Time) {
	p.hbSeq++
	h := schema.Heartbeat{TimeNS: now.UnixNano(), Seq: p.hbSeq, RingDepth: int64(p.o.Ring.Len()), Captured: p.o.Ring.Pushed()}
	for r := schema.LossReason(0); r < schema.LossReasonCount; r++ {
		h.Dropped += p.o.Drops.Load(r)
	}
	if p.o.Stats != nil {
		p.o.Stats(&h)
	}
	p.idBuf = p.o.Encoder.AppendHeartbeatID(p.idBuf[:0], &h)
	p.docBuf = p.o.Encoder.AppendHeartbeat(p.docBuf[:0], &h)
	p.add(ctx)
}
