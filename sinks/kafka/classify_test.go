package kafka

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"syscall"
	"testing"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/fileward/fileward/sinks"
)

func TestIsRetryable(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("kafka: produce to t: %w", err) }
	cases := []struct {
		name      string
		err       error
		retryable bool
	}{
		// Retryable broker codes (kafka-go's Temporary() set).
		{"leader not available", kafkago.LeaderNotAvailable, true},
		{"not leader", kafkago.NotLeaderForPartition, true},
		{"request timed out", kafkago.RequestTimedOut, true},
		{"not enough replicas", kafkago.NotEnoughReplicas, true},
		{"not enough replicas after append", kafkago.NotEnoughReplicasAfterAppend, true},
		{"unknown topic", kafkago.UnknownTopicOrPartition, true},
		{"network exception", kafkago.NetworkException, true},
		{"corrupt message (CRC)", kafkago.InvalidMessage, true},
		{"throttled", kafkago.ThrottlingQuotaExceeded, true},
		// Retryable because an operator fixes them without losing data.
		{"broker not available", kafkago.BrokerNotAvailable, true},
		{"sasl authentication failed", kafkago.SASLAuthenticationFailed, true},
		{"unknown server error", kafkago.Unknown, true},
		{"wrapped by kafka-go with a message", fmt.Errorf("%w: %s", kafkago.NotEnoughReplicas, "isr 1 < 2"), true},
		// Network and context.
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}, true},
		{"connection reset", syscall.ECONNRESET, true},
		{"unexpected EOF", io.ErrUnexpectedEOF, true},
		{"deadline", context.DeadlineExceeded, true},
		{"cancelled", context.Canceled, true},
		{"tls unknown authority", x509.UnknownAuthorityError{}, true},
		{"anything else", errors.New("something odd"), true},
		// Permanent: the message itself, or the topic as configured.
		{"message size too large", kafkago.MessageSizeTooLarge, false},
		{"client-side message too large", kafkago.MessageTooLargeError{}, false},
		{"record list too large", kafkago.RecordListTooLarge, false},
		{"invalid message size", kafkago.InvalidMessageSize, false},
		{"topic authorization failed", kafkago.TopicAuthorizationFailed, false},
		{"invalid record", kafkago.InvalidRecord, false},
		{"unsupported compression", kafkago.UnsupportedCompressionType, false},
		{"invalid topic", kafkago.InvalidTopic, false},
		{"invalid timestamp", kafkago.InvalidTimestamp, false},
		{"invalid required acks", kafkago.InvalidRequiredAcks, false},
		{"policy violation", kafkago.PolicyViolation, false},
		{"unsupported for message format", kafkago.UnsupportedForMessageFormat, false},
	}
	for _, tc := range cases {
		for _, err := range []error{tc.err, wrap(tc.err), kafkago.WriteErrors{nil, wrap(tc.err)}[1]} {
			if got := IsRetryable(err); got != tc.retryable {
				t.Errorf("%s: IsRetryable(%v) = %v, want %v", tc.name, err, got, tc.retryable)
			}
			c := classify(err)
			if sinks.IsPermanent(c) == tc.retryable {
				t.Errorf("%s: classify(%v) permanent = %v, want %v", tc.name, err, sinks.IsPermanent(c), !tc.retryable)
			}
			if reflect.TypeOf(err).Comparable() && !errors.Is(c, err) {
				t.Errorf("%s: classify(%v) = %v, which no longer wraps the cause", tc.name, err, c)
			}
		}
	}
	// Every code kafka-go calls Temporary is retryable here too.
	for code := kafkago.Error(-1); code <= 120; code++ {
		if code.Temporary() && !IsRetryable(code) {
			t.Errorf("code %d (%s) is Temporary in kafka-go but classified permanent", code, code.Title())
		}
	}
	if classify(nil) != nil {
		t.Error("classify(nil) != nil")
	}
}
