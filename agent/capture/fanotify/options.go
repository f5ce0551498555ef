package fanotify

import (
	"errors"
	"log/slog"
	"time"
)

// Options configures a fanotify Source. The agent translates
// source.fanotify.* and source.events into it.
type Options struct {
	// Marks are the paths to mark (source.fanotify.marks). Default: "/".
	Marks []string
	// MarkType is "filesystem" (default), "mount" or "inode". An inode mark
	// on a directory reports events on the directory and its direct children.
	MarkType string
	// Events are config event names: open close create modify rename delete
	// attrib exec access write. Other names are ignored with one warning.
	// Empty means the default set (all but access and write).
	Events []string
	// Queue is "default" (the kernel's 16384-event queue) or "unlimited"
	// (FAN_UNLIMITED_QUEUE: no overflow, but the queue lives in unswappable
	// kernel memory and grows while the agent lags).
	Queue string
	// IgnorePaths are the agent's own paths (data_dir, log files). They are
	// ignored in the kernel with ignore marks where the kernel allows it, and
	// by path prefix in the read loop always.
	IgnorePaths []string
	// HostRoot is the mount point of the host's root filesystem inside the
	// agent's container (source.fanotify.host_root, e.g. /host). Paths under
	// it are reported without the prefix, as the host sees them; "" keeps
	// paths as the agent sees them. Marks and IgnorePaths stay as the agent
	// sees them (with the prefix).
	HostRoot string
	// SelfPID is the agent's pid; its events are dropped. 0 disables.
	SelfPID int
	// ReadBuffer is the size in bytes of each read(2). Default 256 KiB.
	ReadBuffer int
	// BatchDelay is how long the read loop sleeps after a read that
	// returned less than 1/16 of ReadBuffer, so that a trickle of events
	// costs one wakeup per batch rather than one per event. It bounds the
	// added latency. Default 5ms: against 1ms it cut the agent's CPU per
	// event by about a third in BenchmarkCaptureOverhead (fewer wakeups of
	// the reader and of the Go scheduler), and a busy host, whose reads
	// fill the buffer, never sleeps here. Negative disables.
	BatchDelay time.Duration
	// DirCacheSize bounds the directory handle → path cache. Default 16384.
	DirCacheSize int
	// Logger receives warnings (fallbacks, ignored event names). nil discards.
	Logger *slog.Logger

	// forceDescriptor makes New use a descriptor-mode group only (tests).
	forceDescriptor bool
	// forceLegacyRename uses FAN_MOVED_FROM/FAN_MOVED_TO as on kernels
	// before 5.17 (tests).
	forceLegacyRename bool
	// childFID adds the object's own file handle to each record
	// (FAN_REPORT_FID|FAN_REPORT_TARGET_FID): directory handles are then
	// learnt from create and rename events. Off by default for cost.
	childFID bool
	// kernelRelease, when set, stands in for uname's release (tests of the
	// kernel checks).
	kernelRelease string
}

// ErrNotSupported is returned by New on operating systems without fanotify.
var ErrNotSupported = errors.New("fanotify is Linux-only: use source.type eslogger on macOS, or replay")

// Stats are the read loop's own counters. They are safe to read while Run is
// running; they exist for metrics and to prove the loop never stalls.
type Stats struct {
	Reads       uint64        // read(2) calls that returned data
	Records     uint64        // kernel records decoded (one may hold several merged bits)
	Events      uint64        // events built and offered to the ring
	Overflows   uint64        // FAN_Q_OVERFLOW records seen
	SelfDropped uint64        // records dropped because they came from SelfPID
	Ignored     uint64        // events dropped by the read loop's IgnorePaths check
	Unresolved  uint64        // events whose directory handle could not be resolved
	Malformed   uint64        // records that failed to decode
	Nameless    uint64        // nameless inode records dropped (the FAN_ATTRIB link-count change of a link or unlink)
	MaxWork     time.Duration // longest time spent processing one read's buffer
}
