// Package kafka is the Kafka sink: it delivers each sinks.Batch to one topic
// through a github.com/segmentio/kafka-go Writer and answers only once the
// broker has acknowledged (with required_acks all: every in-sync replica).
//
// It owns: the mapping of an event to a Kafka message (key = host.id, so one
// host's events stay in order in one partition; headers event.id,
// ecs.version and content-type), TLS and SASL set-up, and the
// classification of kafka-go's errors into retryable ones and ones marked
// sinks.Permanent (a message the broker will never take).
//
// It must not retry, back off, or dead-letter: it makes one attempt per
// Send and the shipper (agent/ship) owns the rest. It must not import
// anything under agent/ (it takes its own Options), keep package-level
// mutable state, or log secrets.
package kafka
