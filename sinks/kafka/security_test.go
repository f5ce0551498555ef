package kafka

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/fileward/fileward/sinks"
	"github.com/fileward/fileward/sinks/sinktest"
)

// testPKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate, written as PEM files in a temporary directory.
type testPKI struct {
	caFile, serverCert, serverKey, clientCert, clientKey, garbage string
	caPool                                                        *x509.CertPool
}

func newPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	write := func(name string, blocks ...*pem.Block) string {
		var b bytes.Buffer
		for _, blk := range blocks {
			if err := pem.Encode(&b, blk); err != nil {
				t.Fatal(err)
			}
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	keyPEM := func(k *ecdsa.PrivateKey) *pem.Block {
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return &pem.Block{Type: "EC PRIVATE KEY", Bytes: der}
	}
	now := time.Now()
	caKey := key()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fileward test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, cn string, usage x509.ExtKeyUsage, ips []net.IP) (*pem.Block, *pem.Block) {
		k := key()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return &pem.Block{Type: "CERTIFICATE", Bytes: der}, keyPEM(k)
	}
	p := testPKI{caPool: x509.NewCertPool()}
	p.caPool.AddCert(ca)
	p.caFile = write("ca.pem", &pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	sc, sk := issue(2, "broker", x509.ExtKeyUsageServerAuth, []net.IP{net.ParseIP("127.0.0.1")})
	p.serverCert, p.serverKey = write("server.pem", sc), write("server-key.pem", sk)
	cc, ck := issue(3, "fileward-agent", x509.ExtKeyUsageClientAuth, nil)
	p.clientCert, p.clientKey = write("client.pem", cc), write("client-key.pem", ck)
	p.garbage = filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(p.garbage, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBuildTLS(t *testing.T) {
	p := newPKI(t)
	good := []struct {
		name string
		in   TLS
		want func(*tls.Config) bool
	}{
		{"off", TLS{}, func(c *tls.Config) bool { return c == nil }},
		{"system roots", TLS{Enabled: true}, func(c *tls.Config) bool {
			return c != nil && c.RootCAs == nil && !c.InsecureSkipVerify && c.MinVersion == tls.VersionTLS12
		}},
		{"ca file", TLS{Enabled: true, CAFile: p.caFile}, func(c *tls.Config) bool {
			return c.RootCAs != nil && c.RootCAs.Equal(p.caPool) && !c.InsecureSkipVerify && len(c.Certificates) == 0
		}},
		{"client cert", TLS{Enabled: true, CAFile: p.caFile, CertFile: p.clientCert, KeyFile: p.clientKey}, func(c *tls.Config) bool {
			return len(c.Certificates) == 1 && !c.InsecureSkipVerify
		}},
		{"skip verify only when asked", TLS{Enabled: true, InsecureSkipVerify: true}, func(c *tls.Config) bool {
			return c.InsecureSkipVerify
		}},
	}
	for _, tc := range good {
		c, err := BuildTLS(tc.in)
		if err != nil || !tc.want(c) {
			t.Errorf("%s: BuildTLS(%+v) = %+v, %v", tc.name, tc.in, c, err)
		}
	}
	bad := []struct {
		name string
		in   TLS
	}{
		{"files without enabled", TLS{CAFile: p.caFile}},
		{"skip verify without enabled", TLS{InsecureSkipVerify: true}},
		{"missing ca", TLS{Enabled: true, CAFile: filepath.Join(t.TempDir(), "nope.pem")}},
		{"ca not pem", TLS{Enabled: true, CAFile: p.garbage}},
		{"cert without key", TLS{Enabled: true, CertFile: p.clientCert}},
		{"key without cert", TLS{Enabled: true, KeyFile: p.clientKey}},
		{"mismatched pair", TLS{Enabled: true, CertFile: p.clientCert, KeyFile: p.serverKey}},
	}
	for _, tc := range bad {
		if c, err := BuildTLS(tc.in); err == nil {
			t.Errorf("%s: BuildTLS(%+v) = %+v, want an error", tc.name, tc.in, c)
		}
	}
}

// TestTLSBroker delivers to a kfake broker that requires TLS with a client
// certificate, and checks that verification is on: a sink that does not
// trust the CA, or has no client certificate, is refused (retryably).
func TestTLSBroker(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	serverPair, err := tls.LoadX509KeyPair(p.serverCert, p.serverKey)
	if err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, 2, kfake.TLS(&tls.Config{
		Certificates: []tls.Certificate{serverPair},
		ClientCAs:    p.caPool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}))
	evs := sinktest.Events("tls", 200, 2)
	s := newSink(t, c, Options{TLS: TLS{Enabled: true, CAFile: p.caFile, CertFile: p.clientCert, KeyFile: p.clientKey}})
	sendAll(t, s, evs, 100)

	clientPair, err := tls.LoadX509KeyPair(p.clientCert, p.clientKey)
	if err != nil {
		t.Fatal(err)
	}
	sinktest.ExpectExactly(t, idCounts(t, c, testTopic, kgo.DialTLSConfig(&tls.Config{
		RootCAs: p.caPool, Certificates: []tls.Certificate{clientPair},
	})), evs)

	for name, o := range map[string]TLS{
		"untrusted CA":   {Enabled: true, CertFile: p.clientCert, KeyFile: p.clientKey},
		"no client cert": {Enabled: true, CAFile: p.caFile},
	} {
		bad := newSink(t, c, Options{TLS: o, Timeout: 2 * time.Second})
		_, err := bad.Send(context.Background(), &sinks.Batch{Events: evs[:1]})
		if err == nil || !IsRetryable(err) {
			t.Errorf("%s: Send = %v, want a retryable TLS error", name, err)
		}
	}
}

func TestBuildSASL(t *testing.T) {
	for _, tc := range []struct {
		in   SASL
		name string // "" = nil mechanism
	}{
		{SASL{}, ""},
		{SASL{Mechanism: "PLAIN", Username: "u", Password: "p"}, "PLAIN"},
		{SASL{Mechanism: "plain", Username: "u", Password: "p"}, "PLAIN"},
		{SASL{Mechanism: "SCRAM-SHA-256", Username: "u", Password: "p"}, "SCRAM-SHA-256"},
		{SASL{Mechanism: "scram-sha-512", Username: "u", Password: "p"}, "SCRAM-SHA-512"},
	} {
		m, err := BuildSASL(tc.in)
		switch {
		case err != nil:
			t.Errorf("BuildSASL(%q): %v", tc.in.Mechanism, err)
		case tc.name == "" && m != nil:
			t.Errorf("BuildSASL(%q) = %s, want none", tc.in.Mechanism, m.Name())
		case tc.name != "" && (m == nil || m.Name() != tc.name):
			t.Errorf("BuildSASL(%q) = %v, want %s", tc.in.Mechanism, m, tc.name)
		}
	}
	const secret = "hunter2-\u0007-secret" // a control character SASLprep refuses
	for _, in := range []SASL{
		{Mechanism: "GSSAPI", Username: "u", Password: "p"},
		{Mechanism: "PLAIN", Password: "p"},
		{Username: "u", Password: "p"},
		{Mechanism: "SCRAM-SHA-256", Username: "u", Password: secret},
	} {
		_, err := BuildSASL(in)
		if err == nil {
			t.Errorf("BuildSASL(%+v) accepted it", in.Mechanism)
		} else if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("BuildSASL error quotes the password: %v", err)
		}
	}
}

// TestSASLBroker authenticates for real against kfake with each mechanism,
// and checks that a wrong password is refused retryably and that neither
// the error nor the logs show the password.
func TestSASLBroker(t *testing.T) {
	t.Parallel()
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mech, func(t *testing.T) {
			const user, pass = "agent", "s3cret-pass"
			c := newCluster(t, 1, kfake.EnableSASL(), kfake.Superuser(mech, user, pass), kfake.Superuser("PLAIN", "reader", "reader"))
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			evs := sinktest.Events("sasl", 50, 1)
			s := newSink(t, c, Options{SASL: SASL{Mechanism: mech, Username: user, Password: pass}, Logger: log})
			sendAll(t, s, evs, 50)
			sinktest.ExpectExactly(t, idCounts(t, c, testTopic,
				kgo.SASL(plain.Auth{User: "reader", Pass: "reader"}.AsMechanism())), evs)

			const wrong = "wrong-pass-1234"
			bad := newSink(t, c, Options{SASL: SASL{Mechanism: mech, Username: user, Password: wrong}, Logger: log, Timeout: 2 * time.Second})
			_, err := bad.Send(context.Background(), &sinks.Batch{Events: evs[:1]})
			if err == nil || !IsRetryable(err) {
				t.Fatalf("Send with a wrong password = %v, want a retryable error", err)
			}
			for _, secret := range []string{pass, wrong} {
				if strings.Contains(err.Error(), secret) || strings.Contains(logs.String(), secret) {
					t.Fatalf("a password leaked into the error or the logs:\n%v\n%s", err, logs.String())
				}
			}
		})
	}
}
