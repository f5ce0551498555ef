package kafka

import (
	"errors"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/fileward/fileward/sinks"
)

// permanentCode reports whether a broker error code is one that a retry of
// the same message, to the same topic with the same configuration, cannot
// fix. Events failing with one are marked sinks.Permanent and go to
// dead-letter.
func permanentCode(code kafkago.Error) bool {
	switch code {
	case kafkago.InvalidMessageSize, // 4
		kafkago.MessageSizeTooLarge,         // 10: over message.max.bytes / max.message.bytes
		kafkago.InvalidTopic,                // 17
		kafkago.RecordListTooLarge,          // 18
		kafkago.InvalidRequiredAcks,         // 21
		kafkago.TopicAuthorizationFailed,    // 29: the principal may not write the topic
		kafkago.InvalidTimestamp,            // 32
		kafkago.UnsupportedForMessageFormat, // 43
		kafkago.PolicyViolation,             // 44
		kafkago.UnsupportedCompressionType,  // 76
		kafkago.InvalidRecord:               // 87: broker-side record validation failed
		return true
	}
	return false
}

// IsRetryable reports whether a Kafka error may succeed when the same
// message is sent again later. It is the complement of the permanent set:
//   - kafka-go's client-side MessageTooLargeError and the broker codes in
//     permanentCode (message too large, invalid record, topic
//     authorization failed, unsupported compression, ...) are permanent;
//   - every other broker code is retryable: the ones kafka-go's
//     Error.Temporary reports (leader not available, not leader, request
//     timed out, not enough replicas, unknown topic, network exception...)
//     and the rest (SASL authentication failed, broker not available,
//     unknown server error), which come from the broker's or our own
//     configuration rather than from the event and are fixed by an
//     operator without losing the backlog;
//   - connection errors (refused, reset, EOF, TLS), timeouts and context
//     cancellation are retryable.
//
// Unknown errors are retryable: the shipper keeps them in the spool, where
// they are bounded and visible, instead of dead-lettering data on a guess.
func IsRetryable(err error) bool {
	if err == nil {
		return true
	}
	var tooLarge kafkago.MessageTooLargeError
	if errors.As(err, &tooLarge) {
		return false
	}
	var code kafkago.Error
	if errors.As(err, &code) {
		return !permanentCode(code)
	}
	return true
}

// classify marks err with sinks.Permanent when it is not retryable.
func classify(err error) error {
	if err == nil || IsRetryable(err) || sinks.IsPermanent(err) {
		return err
	}
	return sinks.Permanent(err)
}
