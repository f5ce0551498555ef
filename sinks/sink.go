package sinks

import (
	"context"
	"errors"
)

// Event is one encoded ECS document with the metadata sinks need without
// parsing it.
type Event struct {
	// ID is event.id; Elasticsearch uses it as _id, Kafka as a header.
	ID string
	// Key is the partitioning key: host.id.
	Key string
	// Doc is one ECS JSON object, without a trailing newline.
	Doc []byte
}

// Batch is what the shipper hands a sink: the events of one spool record,
// or the not-yet-delivered rest of it on a retry.
type Batch struct {
	Events []Event
}

// Len is the number of events in b.
func (b *Batch) Len() int { return len(b.Events) }

// Failure is one event a sink did not deliver.
type Failure struct {
	// Index is the event's index in the Batch given to Send.
	Index int
	// Err says why. Wrap it with Permanent when a retry cannot succeed
	// (a mapping error, a message too large); the shipper then
	// dead-letters the event instead of retrying it.
	Err error
}

// Result is a sink's answer for a Batch that was at least partly sent.
// Every index not listed in Failures was acknowledged by the destination.
type Result struct {
	Failures []Failure
}

// Sink delivers batches to one destination.
//
// Send is called by one shipper goroutine at a time, never concurrently on one
// Sink, unless the sink documents that Send is safe for concurrent use (the
// Elasticsearch sink does, for elasticsearch.workers > 1). It makes one attempt and returns only once the destination has
// acknowledged or refused every event it sent:
//   - err == nil and no Failures: the whole batch is delivered.
//   - err == nil with Failures: the listed events were not delivered; the
//     rest were. Permanent failures go to dead-letter, the others are retried.
//   - err != nil: nothing in the batch is known to be delivered; the shipper
//     retries the whole batch with backoff (or dead-letters all of it when
//     IsPermanent(err)).
//
// Send must honour ctx. Close releases connections; it is called once, after
// the last Send, and ctx bounds how long it may take.
type Sink interface {
	Send(ctx context.Context, b *Batch) (Result, error)
	Close(ctx context.Context) error
}

// ErrPermanent marks failures that a retry cannot fix.
var ErrPermanent = errors.New("permanent failure")

// Permanent wraps err so that IsPermanent reports true.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() []error {
	return []error{e.err, ErrPermanent}
}

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool { return errors.Is(err, ErrPermanent) }
