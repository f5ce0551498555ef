// Package ebpf is the Linux capture source that reads file events from
// fileward's own BPF LSM programs (bpf/fileward.bpf.c) through a BPF ring
// buffer, and turns each record into a schema.Event pushed onto a
// capture.Ring. It produces the fanotify source's event.action vocabulary,
// with the process read in the kernel at the moment of the event (pid, ppid,
// real and effective uid and gid, comm, start time, cgroup id), and exact
// counts of repeats (fileward.count) aggregated in a BPF map.
//
// The read loop does only this: read the ring buffer, decode, build the event
// and TryPush it. Between reads it sweeps the aggregation map for finished
// windows and turns the kernel's loss counters into capture.Drops. It takes no
// lock shared with slower code and reads nothing in /proc; the executable of
// a process whose exec it did not see is filled after the ring by Enrich.
//
// The record decoder and Options build everywhere so they can be tested and
// fuzzed on any OS; New returns ErrNotSupported off Linux (amd64, arm64).
package ebpf
