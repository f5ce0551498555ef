// Package ship moves batches from the spool to one sink: one Shipper per
// sink, each with its own goroutine, spool cursor and backoff, so that a dead
// destination never slows another.
//
// A Shipper reads records from its cursor, decodes them (sinks.DecodeBatch)
// and hands them to an agent/deliver Window, which sends them with up to
// Options.Workers Sends in flight (1 for ordered sinks such as Kafka and the
// file; elasticsearch.workers for Elasticsearch), retries only the failed
// events of each batch with the batch's own exponential backoff
// (cenkalti/backoff/v4, no maximum elapsed time) for as long as the record
// is still in the spool, and slows down on 429. The Window hands batches
// back in order, and the cursor moves only past records whose every event
// ended acknowledged or dead-lettered. Permanent failures are written to
// <DeadLetterDir>/<Name>.ndjson (rotated by size) and reported through
// OnRejected, except loss reports, which are dead-lettered but not reported
// again (that would loop forever on a sink that rejects everything).
//
// This package owns the retry policy (sinks make one attempt). It must not
// import agent/config or any capture code, keep a context in a struct, or
// use the global Prometheus registry or logger.
package ship
