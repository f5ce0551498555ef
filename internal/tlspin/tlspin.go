// Package tlspin builds the TLS client side of every HTTPS connection the
// agent and the collector make (the Elasticsearch sink, used by both). It
// verifies the server's certificate itself, in tls.Config.VerifyConnection,
// so that certificate pinning (ca_fingerprint) and Beats' verification_mode
// mean the same thing everywhere:
//
//   - full (the default): the chain must verify up to a trusted root, and the
//     certificate must name the host that was dialled;
//   - certificate: the chain must verify, the name is not checked;
//   - none: nothing is checked (tests and throw-away clusters only).
//
// The trusted roots are the system pool, or the certificates of ca_file
// alone when it is set. With a ca_fingerprint the only root is the one
// certificate whose SHA-256 matches the pin, found among the certificates the
// server presents (or in ca_file); it must be a CA certificate and the leaf
// must chain to it by signature. A certificate that merely appears in the
// presented chain with the pinned fingerprint proves nothing, since a CA
// certificate is public: elastic-transport-go's own fingerprint check
// accepts exactly that, and is not used.
package tlspin

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
)

// Verification modes, as Beats' ssl.verification_mode names them.
const (
	ModeFull        = "full"
	ModeCertificate = "certificate"
	ModeNone        = "none"
)

// Modes lists the accepted verification modes ("" means full).
func Modes() []string { return []string{ModeFull, ModeCertificate, ModeNone} }

// Options configure a Verifier. The zero value verifies fully against the
// system roots.
type Options struct {
	// CAFile is a PEM bundle; when set its certificates are the only roots.
	CAFile string
	// CAFingerprint is the hex SHA-256 of the pinned CA certificate's DER
	// (colons, spaces and case are ignored).
	CAFingerprint string
	// Mode is full (default, also ""), certificate or none.
	Mode string
	// Logger receives the reason of every refused certificate (nil discards).
	Logger *slog.Logger
	// Component prefixes log lines and errors, e.g. "elasticsearch".
	Component string
}

// Verifier checks server certificates. It is safe for concurrent use.
type Verifier struct {
	mode      string
	roots     *x509.CertPool      // ca_file, or nil for the system pool
	caCerts   []*x509.Certificate // ca_file's certificates (pin candidates)
	pin       []byte              // 32 bytes, or nil
	log       *slog.Logger
	component string
}

// ParseFingerprint normalises a hex SHA-256 fingerprint (colons allowed).
func ParseFingerprint(s string) ([]byte, error) {
	h := strings.NewReplacer(":", "", " ", "").Replace(strings.TrimSpace(s))
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != sha256.Size {
		return nil, errors.New("ca_fingerprint must be the 64 hex digits of a SHA-256 fingerprint (colons allowed), as Elasticsearch prints at first start")
	}
	return b, nil
}

// New checks o and loads ca_file.
func New(o Options) (*Verifier, error) {
	v := &Verifier{mode: o.Mode, log: o.Logger, component: o.Component}
	if v.mode == "" {
		v.mode = ModeFull
	}
	if v.component == "" {
		v.component = "tls"
	}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	switch v.mode {
	case ModeFull, ModeCertificate, ModeNone:
	default:
		return nil, fmt.Errorf("%s: tls.verification_mode %q is not one of full, certificate, none", v.component, o.Mode)
	}
	if o.CAFingerprint != "" {
		pin, err := ParseFingerprint(o.CAFingerprint)
		if err != nil {
			return nil, fmt.Errorf("%s: tls.%w", v.component, err)
		}
		v.pin = pin
	}
	if o.CAFile != "" {
		data, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%s: read tls.ca_file: %w", v.component, err)
		}
		certs, err := parsePEM(data)
		if err != nil {
			return nil, fmt.Errorf("%s: tls.ca_file %s: %w", v.component, o.CAFile, err)
		}
		v.roots = x509.NewCertPool()
		for _, c := range certs {
			v.roots.AddCert(c)
		}
		v.caCerts = certs
	}
	return v, nil
}

func parsePEM(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("a certificate does not parse: %w", err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("holds no PEM certificate")
	}
	return certs, nil
}

// Mode is the effective verification mode.
func (v *Verifier) Mode() string { return v.mode }

// Config returns the client configuration for one connection to host (a
// DNS name or an IP address, without port). Verification happens in
// VerifyConnection against host, so it does not depend on SNI (which is
// not sent for IP addresses).
func (v *Verifier) Config(host string) *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	// The library's own check is replaced, not skipped: VerifyConnection
	// below runs on every handshake (resumed ones included) and fails it.
	c.InsecureSkipVerify = true //nolint:gosec // verified in VerifyConnection
	if v.mode == ModeNone {
		return c
	}
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if err := v.Verify(host, cs.PeerCertificates); err != nil {
			v.log.Error(v.component+": refusing the server's TLS certificate; nothing was sent", "server", host, "reason", err.Error())
			return err
		}
		return nil
	}
	return c
}

// Verify checks a presented chain (leaf first) for host.
func (v *Verifier) Verify(host string, certs []*x509.Certificate) error {
	if v.mode == ModeNone {
		return nil
	}
	if len(certs) == 0 {
		return fmt.Errorf("%s: the server presented no certificate", v.component)
	}
	opts := x509.VerifyOptions{Roots: v.roots, Intermediates: x509.NewCertPool()}
	for _, c := range certs[1:] {
		opts.Intermediates.AddCert(c)
	}
	if v.mode == ModeFull {
		opts.DNSName = host
	}
	if v.pin != nil {
		ca, err := v.pinned(certs)
		if err != nil {
			return err
		}
		opts.Roots = x509.NewCertPool()
		opts.Roots.AddCert(ca)
	}
	if _, err := certs[0].Verify(opts); err != nil {
		var what string
		switch {
		case v.pin != nil:
			what = "does not verify with the pinned CA (tls.ca_fingerprint) as the only root"
		case v.roots != nil:
			what = "does not verify against tls.ca_file"
		default:
			what = "does not verify against the system's trusted CAs"
		}
		return fmt.Errorf("%s: the server's certificate (subject %q) %s: %w", v.component, certs[0].Subject.String(), what, err)
	}
	return nil
}

// pinned finds the CA certificate with the pinned fingerprint among the
// presented certificates and ca_file.
func (v *Verifier) pinned(certs []*x509.Certificate) (*x509.Certificate, error) {
	for _, c := range append(append([]*x509.Certificate(nil), certs...), v.caCerts...) {
		sum := sha256.Sum256(c.Raw)
		if !bytes.Equal(sum[:], v.pin) {
			continue
		}
		if !c.BasicConstraintsValid || !c.IsCA {
			return nil, fmt.Errorf("%s: the certificate matching tls.ca_fingerprint (subject %q) is not a CA certificate; pin the CA that signed the server's certificate", v.component, c.Subject.String())
		}
		return c, nil
	}
	return nil, fmt.Errorf("%s: no certificate presented by the server (or in tls.ca_file) matches tls.ca_fingerprint", v.component)
}

// Transport returns a RoundTripper that sends each request through a clone
// of base whose TLSClientConfig is Config(host) for the request's host. The
// check is bound to the host in the configuration itself (not in a dialer),
// so it holds through an HTTP proxy too: net/http then does the TLS
// handshake with the target over the CONNECT tunnel using TLSClientConfig.
// base's own TLSClientConfig and DialTLSContext are not used.
func (v *Verifier) Transport(base *http.Transport) *Transport {
	return &Transport{v: v, base: base, byHost: map[string]*http.Transport{}}
}

// Transport is Verifier.Transport's RoundTripper.
type Transport struct {
	v      *Verifier
	base   *http.Transport
	mu     sync.Mutex
	byHost map[string]*http.Transport
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	return t.forHost(req.URL.Hostname()).RoundTrip(req)
}

func (t *Transport) forHost(host string) *http.Transport {
	t.mu.Lock()
	defer t.mu.Unlock()
	if tr, ok := t.byHost[host]; ok {
		return tr
	}
	tr := t.base.Clone()
	tr.DialTLSContext = nil // TLS is done by net/http with the config below
	tr.TLSClientConfig = t.v.Config(host)
	t.byHost[host] = tr
	return tr
}

// CloseIdleConnections closes the idle connections of every host.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, tr := range t.byHost {
		tr.CloseIdleConnections()
	}
}
