// Package fanotify is the Linux capture source: it reads file events from the
// kernel's fanotify API and turns each into schema.Event values pushed onto a
// capture.Ring.
//
// It owns the fanotify groups, their marks (filesystem, mount or inode, plus
// in-kernel ignore marks for the agent's own paths), the decoding of the
// kernel's event records, the split of merged records into one event per mask
// bit in syscall order, and the bounded cache that maps directory file handles
// to paths.
//
// The read loop does only this: read(2) a large buffer, decode, resolve the
// parent directory's handle (cached, open_by_handle_at on a miss), build the
// event and TryPush it. It never waits on anything but the kernel, takes no
// lock shared with slower code, and does no /proc reads: process fields other
// than the pid are filled after the ring by agent/procfs.
//
// It must not import the pipeline, the spool, any sink or agent/config. The
// syscall code builds only on Linux; Options, the decoder and the caches build
// everywhere so they can be tested and fuzzed on any OS, and New returns an
// error that says fanotify is Linux-only elsewhere.
package fanotify
