// Package replay is the capture source that feeds a recorded stream (eslogger
// JSON lines, or Fileward's own ECS NDJSON) into the ring, for demos, tests
// and benchmarks.
//
// It behaves like a live source: it pushes with Ring.TryPush and never
// waits on the ring, so a slow pipeline shows up as ring_full drops exactly as
// it would with the kernel. Every event gets a sequence number that keeps
// rising across loops, so ids stay distinct when loop is on, and a second
// replay of the same input gives the same ids.
package replay
