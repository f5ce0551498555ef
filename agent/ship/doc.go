// Package ship moves batches from the spool to one sink: one Shipper per
// sink, each with its own goroutine, spool cursor and backoff, so that a dead
// destination never slows another.
//
// A Shipper reads the record at its cursor, decodes it (sinks.DecodeBatch),
// calls Sink.Send and advances the cursor only once every event of the
// record has ended acknowledged or dead-lettered. Retryable failures are
// retried with exponential backoff (cenkalti/backoff/v4, no maximum elapsed
// time) for as long as the record is still in the spool; permanent ones are
// written to <DeadLetterDir>/<Name>.ndjson and reported through OnRejected.
//
// This package owns the retry policy (sinks make one attempt). It must not
// import agent/config or any capture code, keep a context in a struct, or
// use the global Prometheus registry or logger.
package ship
