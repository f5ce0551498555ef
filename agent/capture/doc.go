// Package capture owns the boundary between the kernel's event stream and the
// rest of the agent: the Source interface, the Event value (an alias of
// schema.Event), the bounded Ring and the Drops counters.
//
// The capture law lives here: a source's read loop never waits on anything but
// the kernel. It pushes with Ring.TryPush, which never blocks, and counts every
// event it cannot hand over. This package must not do disk or network I/O and
// must not import the pipeline, the spool or any sink.
package capture
