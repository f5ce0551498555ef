// Package sinks defines what every sink implements (Sink), what it is given
// (Batch) and what it answers (Result), plus the binary form of a Batch that
// the spool stores.
//
// A sink makes one attempt per Send and classifies what went wrong; the
// shipper (agent/ship) owns retries, backoff, cursors and dead-lettering.
// This package and its children never import anything under agent/.
package sinks
