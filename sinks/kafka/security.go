package kafka

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
)

// BuildTLS returns the TLS configuration for t, or nil when TLS is off. The
// collector builds its consumer's TLS with it too.
// Certificate verification stays on unless InsecureSkipVerify is set.
func BuildTLS(t TLS) (*tls.Config, error) {
	if !t.Enabled {
		if t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.InsecureSkipVerify {
			return nil, errors.New("kafka: tls: ca_file, cert_file, key_file or insecure_skip_verify is set but tls.enabled is false; set tls.enabled: true or remove them")
		}
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kafka: tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kafka: tls.ca_file: %s holds no PEM certificate", t.CAFile)
		}
		c.RootCAs = pool
	}
	switch {
	case t.CertFile != "" && t.KeyFile != "":
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("kafka: tls.cert_file/key_file: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	case t.CertFile != "" || t.KeyFile != "":
		return nil, errors.New("kafka: tls: cert_file and key_file go together; set both for a client certificate, or neither")
	}
	// Verification is switched off only on explicit request.
	c.InsecureSkipVerify = t.InsecureSkipVerify
	return c, nil
}

// BuildSASL returns the SASL mechanism for s, or nil when Mechanism is "".
// The collector uses it too.
func BuildSASL(s SASL) (sasl.Mechanism, error) {
	mech := strings.ToUpper(strings.TrimSpace(s.Mechanism))
	if mech == "" {
		if s.Username != "" || s.Password != "" {
			return nil, errors.New("kafka: sasl: username or password is set but sasl.mechanism is empty; set PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
		}
		return nil, nil
	}
	if s.Username == "" {
		return nil, fmt.Errorf("kafka: sasl.username: required with mechanism %s", mech)
	}
	switch mech {
	case "PLAIN":
		return plain.Mechanism{Username: s.Username, Password: s.Password}, nil
	case "SCRAM-SHA-256", "SCRAM-SHA-512":
		algo := scram.SHA256
		if mech == "SCRAM-SHA-512" {
			algo = scram.SHA512
		}
		m, err := scram.Mechanism(algo, s.Username, s.Password)
		if err != nil {
			// The library's error quotes the credential it could not
			// SASLprep (the password included), so it is not passed on.
			return nil, fmt.Errorf("kafka: sasl: %s: the username or password holds characters SASLprep (RFC 4013) forbids", mech)
		}
		return m, nil
	}
	return nil, fmt.Errorf("kafka: sasl.mechanism: unknown mechanism %q; use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", s.Mechanism)
}

// MechanismName is the mechanism for logs: never the credentials.
func MechanismName(s SASL) string {
	if s.Mechanism == "" {
		return "none"
	}
	return strings.ToUpper(s.Mechanism)
}
