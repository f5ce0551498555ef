// Package file is the local NDJSON sink: one ECS document per line, rotated
// by size, keeping a bounded number of old files.
//
// It is fed only by a shipper, from batches that are already in the spool,
// through the same sinks.Sink interface as the network sinks. A Send that
// fails part-way truncates what it wrote, so a retry never leaves a torn or
// doubled line. It must not import anything under agent/.
package file
