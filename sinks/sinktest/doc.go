// Package sinktest is the conformance suite every sinks.Sink runs in its
// tests, plus a generator of realistic ECS events for tests and benchmarks.
//
// Run checks what sinks.Sink's doc comment promises and what any
// destination can be asked about: a batch is delivered with every event.id
// exactly once, an empty batch is a no-op, a cancelled or expiring context
// makes Send return promptly with a retryable error, and Close releases the
// sink. The destination is observed only through a Verifier, so the suite
// stays generic.
//
// It is imported by test code only. It must not import anything under
// agent/, nor any particular sink.
package sinktest
