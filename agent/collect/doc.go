// Package collect is the central tier behind `fileward collect`: it reads the
// events topic as a member of a Kafka consumer group and writes them, in
// batches, through a sinks.Sink (the Elasticsearch sink).
//
// Offsets are committed only after every message of a batch is acknowledged
// by the sink or written (and fsynced) to the dead-letter file, so a crash
// re-delivers the uncommitted batch and Elasticsearch's _id = event.id
// collapses the duplicates (409 on create counts as delivered). Retryable
// failures are retried with exponential backoff until they succeed; permanent
// failures and malformed messages (not a JSON object, or no event.id in the
// header or document) are dead-lettered and the collector moves on.
//
// It must not import agent/config (cmd_collect translates the config), must
// not commit an offset before its message is settled, and keeps no global
// state.
package collect
