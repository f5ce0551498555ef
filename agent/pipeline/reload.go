package pipeline

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/fileward/fileward/schema"
)

// update is a rules change waiting for the Run goroutine.
type update struct {
	rules   Rules
	window  time.Duration
	applied chan struct{}
}

// pendingUpdate holds the latest Reconfigure call until Run applies it.
type pendingUpdate struct{ p atomic.Pointer[update] }

// Reconfigure replaces the filter rules and the aggregation window while Run
// runs (a config reload). Run applies it between two events, within one
// housekeeping tick: events it handles after that follow the new rules.
// Aggregated events held under the old window are emitted first, so nothing
// is lost or counted twice. Safe to call from any goroutine; a later call
// replaces an earlier one that was not applied yet. The channel is closed
// once Run has applied the change.
func (p *Pipeline) Reconfigure(r Rules, aggregateWindow time.Duration) <-chan struct{} {
	u := &update{rules: r, window: aggregateWindow, applied: make(chan struct{})}
	p.pending.p.Store(u)
	return u.applied
}

// applyPending applies a Reconfigure call; only Run's goroutine calls it.
func (p *Pipeline) applyPending(ctx context.Context) {
	u := p.pending.p.Swap(nil)
	if u == nil {
		return
	}
	defer close(u.applied)
	p.filter = newFilter(u.rules)
	p.o.Rules = u.rules
	if u.window == p.o.AggregateWindow {
		return
	}
	if p.agg != nil {
		p.agg.flush(func(e *schema.Event) { p.emit(ctx, e) })
	}
	p.o.AggregateWindow = u.window
	p.agg = nil
	if u.window > 0 {
		p.agg = newAggregator(int64(u.window), p.o.AggregateMax)
	}
	p.log.Info("pipeline reconfigured", "aggregate_window", u.window)
}
