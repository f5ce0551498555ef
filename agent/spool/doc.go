// Package spool is Fileward's durable, bounded, on-disk backlog: a segmented
// append-only log of records (one record = one encoded batch), with one
// persisted cursor per sink.
//
// Invariants (see FORMAT.md for the bytes):
//   - Records never span segments. Every record carries its length, its event
//     count, the sequence number of its first event and a CRC-32C.
//   - A torn write can damage only the tail of the newest segment; Open
//     truncates it. A record with a bad CRC anywhere else is corruption: the
//     segment is copied to quarantine/ and rewritten with its good records.
//     Both are counted and neither is fatal.
//   - The segment files never exceed Options.MaxBytes in total (the
//     promise to users is MaxBytes plus one segment): when an append would
//     exceed it, WhenFull decides (drop_oldest deletes whole oldest
//     segments, drop_newest refuses the append). ENOSPC behaves like
//     drop_newest until space returns. Every dropped event is reported
//     through Options.OnDrop.
//   - A sealed segment is deleted once every cursor has passed it (and at
//     least one cursor exists).
//
// The spool treats payloads as opaque bytes. It must not import any other
// Fileward package, must not log through a global logger, and must not
// register metrics anywhere but the injected Registerer.
package spool
