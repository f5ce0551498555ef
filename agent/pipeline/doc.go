// Package pipeline is everything between the ring and the spool: mute and
// filter rules, the aggregation window, process enrichment, ECS encoding,
// batching, and the loss and heartbeat events that report on the agent
// itself.
//
// It runs in one goroutine that pops the ring. It may be slow without harming
// the host (the ring absorbs and counts), but it never blocks the capture
// source. It must not import the spool or any sink: it writes encoded
// batches to an Output.
package pipeline
