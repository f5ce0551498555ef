package collect

import "github.com/fileward/fileward/sinks/kafka"

// TLS configures TLS to the brokers exactly as the Kafka sink's does (the
// same type and the same builder, sinks/kafka.BuildTLS): nothing but Enabled
// turns it on, and verification is off only when InsecureSkipVerify is set.
type TLS = kafka.TLS

// SASL configures SASL authentication as the Kafka sink's does
// (sinks/kafka.BuildSASL). Mechanism "" disables it.
type SASL = kafka.SASL
