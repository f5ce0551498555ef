package ebpf

import (
	"errors"
	"log/slog"
	"time"
)

// Options configures an eBPF Source. The agent translates source.events,
// filters.exclude_paths and filters.aggregate_window into it.
type Options struct {
	// Events are config event names: open close create modify rename delete
	// attrib exec. Others (access, write) are ignored with one warning.
	// Empty means the default set.
	Events []string
	// IgnorePaths are the agent's own paths (data_dir, file sinks). Those
	// that exist when New runs are muted in the kernel before any record is
	// written (by device and inode of each directory a path passes through).
	IgnorePaths []string
	// ExcludePaths are filters.exclude_paths. Those that exist when New
	// runs and fit the kernel's table (with IgnorePaths, at most 8
	// directories or files, matched by device and inode) are filtered in the
	// kernel; the pipeline filters them all by prefix in user space anyway.
	ExcludePaths []string
	// HostRoot is stripped from reported paths (as source.fanotify.host_root).
	HostRoot string
	// SelfPID is the agent's pid; the kernel never reports it. 0 disables.
	SelfPID int
	// AggregateWindow is the kernel's aggregation window: repeats of
	// (process, file, action) within one window are counted in a BPF map
	// and reported as one document per window with their exact count.
	// 0 disables kernel aggregation (every event is a record).
	AggregateWindow time.Duration
	// RingBytes is the BPF ring buffer's size, a power of two. Default 8 MiB.
	RingBytes int
	// MapEntries bounds the aggregation map and the written-files map.
	// Default 32768 each. The read loop keeps one event per aggregation
	// entry (to report its repeats), so this also bounds that memory.
	MapEntries int
	// Logger receives warnings. nil discards.
	Logger *slog.Logger
	// InjectLoadFailure makes New hand the kernel a program its verifier
	// refuses, so that the load fails for real. Tests of the fanotify
	// fallback use it; nothing in the config sets it.
	InjectLoadFailure bool

	// targetPID makes the kernel report only this process (tests).
	//lint:ignore U1000 used by the Linux source only
	targetPID int
	// noPathCache makes every path walk go to the root (the kernel's path
	// cache off): benchmarks compare both in one run.
	//lint:ignore U1000 used by the Linux source only
	noPathCache bool
	// adaptiveWakeup leaves the ring buffer's wake-ups to the kernel (one
	// per record when the reader keeps up): benchmarks compare.
	//lint:ignore U1000 used by the Linux source only
	adaptiveWakeup bool
	// stall, when set, makes Run wait for it to be closed before its first
	// read of the ring buffer (tests of ring-buffer loss).
	//lint:ignore U1000 used by the Linux source only
	stall <-chan struct{}
}

// ErrNotSupported is returned by New where eBPF capture is not built.
var ErrNotSupported = errors.New("ebpf capture is built for Linux on amd64 and arm64 only: use source.type fanotify, eslogger on macOS, or replay")

// Stats are the source's counters, safe to read while Run runs.
type Stats struct {
	Records        uint64 // ring buffer records read
	Events         uint64 // events offered to the ring
	Repeats        uint64 // documents carrying the count of a finished aggregation window
	Aggregated     uint64 // events the kernel folded into a window's count
	RingbufFull    uint64 // records the kernel could not write (ebpf_ringbuf_full)
	MapFull        uint64 // writes the kernel could not remember (ebpf_map_full)
	Unaggregated   uint64 // events sent on their own because the aggregation map was full
	Muted          uint64 // events the kernel dropped by path (agent's own files, exclude_paths)
	PathsTruncated uint64 // paths cut at the kernel's depth or buffer limit
	StashFull      uint64 // syscalls whose arguments the kernel could not keep until their exit (ebpf_map_full)
	PathCacheHits  uint64 // path walks that took their directory's path from the kernel's path cache
	Malformed      uint64 // records that failed to decode
	Ignored        uint64 // records dropped by the read loop's IgnorePaths check
}

// KernelEvents is the number of events the kernel saw and reported: those
// that went out as events (a record may carry two: a creating open) and
// the repeats it counted. Not Records: a record is not an event.
func (s Stats) KernelEvents() uint64 { return s.Events - s.Repeats + s.Aggregated }
