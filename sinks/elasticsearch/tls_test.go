package elasticsearch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/fileward/fileward/internal/tlspin/tlspintest"
	"github.com/fileward/fileward/sinks/elasticsearch/bulktest"
)

func TestTLSVerification(t *testing.T) {
	srv := bulktest.NewTLS(1)
	defer srv.Close()
	cert := srv.Certificate()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(cert.Raw)
	fp := strings.ToUpper(hex.EncodeToString(sum[:]))
	var colon []string
	for i := 0; i < len(fp); i += 2 {
		colon = append(colon, fp[i:i+2])
	}
	for _, tc := range []struct {
		name string
		o    Options
		ok   bool
	}{
		{"verification on by default", Options{}, false},
		{"ca_file", Options{CAFile: caFile}, true},
		{"fingerprint", Options{CAFingerprint: fp}, true},
		{"fingerprint with colons", Options{CAFingerprint: strings.Join(colon, ":")}, true},
		{"wrong fingerprint", Options{CAFingerprint: strings.Repeat("AB", 32)}, false},
		{"insecure_skip_verify", Options{InsecureSkipVerify: true}, true},
		{"verification_mode none", Options{VerificationMode: "none"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.Addresses = []string{srv.URL}
			s, err := New(context.Background(), tc.o)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(context.Background())
			res, err := s.Send(context.Background(), batch(2, 0))
			if tc.ok && (err != nil || len(res.Failures) > 0) {
				t.Fatalf("Send: %v %v", res, err)
			}
			if !tc.ok && err == nil {
				t.Fatal("Send succeeded against an unverified certificate")
			}
		})
	}
}

// syncLog collects a sink's log lines.
type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestPinRefusesForgedChain is the man in the middle of issue 13: a server
// presents its own self-signed leaf with the pinned (public) CA certificate
// appended. elastic-transport-go's fingerprint check accepts it; the sink
// must refuse it, say why, and send nothing: no request, no Authorization.
func TestPinRefusesForgedChain(t *testing.T) {
	ca := tlspintest.NewCA(t, "Elasticsearch security auto-configuration HTTP CA")
	mitm := bulktest.NewTLSWithCert(1, ca.Forgery(t, "127.0.0.1", "localhost"))
	defer mitm.Close()
	var logs syncLog
	s, err := New(context.Background(), Options{
		Addresses: []string{mitm.URL}, APIKey: "bWl0bTpzZWNyZXQ=", CAFingerprint: ca.Fingerprint(),
		SetupTemplate: true, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	if _, err := s.Send(context.Background(), batch(3, 0)); err == nil {
		t.Fatal("Send succeeded through a forged chain")
	} else if !strings.Contains(err.Error(), "pinned CA") {
		t.Errorf("error does not say why: %v", err)
	}
	if n := mitm.AllRequests(); n != 0 {
		t.Fatalf("the forged server received %d requests", n)
	}
	if a := mitm.LastAuthorization(); a != "" {
		t.Fatalf("the forged server saw Authorization %q", a)
	}
	if !strings.Contains(logs.String(), "refusing the server's TLS certificate") || !strings.Contains(logs.String(), "pinned CA") {
		t.Errorf("refusal not logged with its reason:\n%s", logs.String())
	}
}

// TestPinAcceptsValidChain: a leaf the pinned CA signed, for the dialled
// name, is accepted; a leaf for another name only under verification_mode
// certificate.
func TestPinAcceptsValidChain(t *testing.T) {
	ca := tlspintest.NewCA(t, "Elasticsearch HTTP CA")
	good := bulktest.NewTLSWithCert(1, ca.Leaf(t, "127.0.0.1"))
	defer good.Close()
	other := bulktest.NewTLSWithCert(1, ca.Leaf(t, "elastic.example"))
	defer other.Close()
	for _, tc := range []struct {
		name string
		url  string
		mode string
		ok   bool
	}{
		{"right name", good.URL, "", true},
		{"right name, full", good.URL, "full", true},
		{"wrong name", other.URL, "", false},
		{"wrong name, certificate mode", other.URL, "certificate", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(context.Background(), Options{Addresses: []string{tc.url}, APIKey: "aWQ6a2V5",
				CAFingerprint: ca.Fingerprint(), VerificationMode: tc.mode})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(context.Background())
			res, err := s.Send(context.Background(), batch(2, 0))
			if tc.ok && (err != nil || len(res.Failures) > 0) {
				t.Fatalf("Send: %v %v", res, err)
			}
			if !tc.ok && err == nil {
				t.Fatal("Send succeeded against a certificate for another name")
			}
		})
	}
	if good.Count(DefaultDataStream) != 2 || good.LastAuthorization() != "APIKey aWQ6a2V5" { // the same two ids twice
		t.Fatalf("good server: %d documents, Authorization %q", good.Count(DefaultDataStream), good.LastAuthorization())
	}
}

func TestTLSOptionsChecked(t *testing.T) {
	for _, o := range []Options{
		{VerificationMode: "sometimes"},
		{CAFingerprint: "12:34"},
		{InsecureSkipVerify: true, VerificationMode: "full"},
	} {
		o.Addresses = []string{"https://127.0.0.1:9200"}
		if s, err := New(context.Background(), o); err == nil {
			s.Close(context.Background())
			t.Errorf("%+v accepted", o)
		}
	}
}
