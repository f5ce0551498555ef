// Package procfs fills the process fields of Linux capture events from
// /proc/<pid>: parent pid, executable, name, arguments (when asked), user and
// group ids, user name, start time and a stable process.entity_id.
//
// It owns a bounded cache keyed by pid and start time (field 22 of
// /proc/<pid>/stat), with a pidfd per entry to notice when the process has
// exited, so that a reused pid is never attributed to the process that held it
// before. It runs after the capture ring, in the pipeline, never in a read
// loop: each cache miss costs several /proc reads.
//
// It must not import capture sources, the pipeline, the spool or any sink.
package procfs
