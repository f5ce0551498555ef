package capture

import (
	"context"
	"sync/atomic"

	"github.com/fileward/fileward/schema"
)

// Event is the value sources produce and the pipeline consumes.
type Event = schema.Event

// Source is one capture backend: fanotify, eslogger or replay.
//
// Run is called once, by the agent, from its own goroutine. It reads the
// kernel (or a recorded stream) and pushes each event with out.TryPush, never
// blocking on the ring. (A replayed file, which has no kernel queue to
// protect, waits with out.Push unless told to behave like capture.) Losses it detects itself (kernel overflow, sequence
// gaps, restarts, malformed input) are counted in drops. Run returns nil when
// ctx is cancelled, or an error that says why capture cannot go on (a missing
// permission, say). A source that reaches the end of a finite input returns
// nil without waiting for ctx.
//
// A future native Endpoint Security client (cgo, entitlement) is just another
// Source; nothing after the ring needs to change for it.
type Source interface {
	// Name is the source label in metrics: "fanotify", "eslogger" or "replay".
	Name() string
	Run(ctx context.Context, out *Ring, drops *Drops) error
}

// Drops counts lost events by reason. It is safe for concurrent use and
// never blocks, so a read loop may call Add. The pipeline reads it to emit
// loss events and /metrics reads it for fileward_events_dropped_total.
type Drops struct {
	n [schema.LossReasonCount]atomic.Uint64
}

// Add counts n events lost for reason.
func (d *Drops) Add(reason schema.LossReason, n uint64) {
	if reason < schema.LossReasonCount && n > 0 {
		d.n[reason].Add(n)
	}
}

// Load returns the total lost for reason so far.
func (d *Drops) Load(reason schema.LossReason) uint64 {
	if reason < schema.LossReasonCount {
		return d.n[reason].Load()
	}
	return 0
}
