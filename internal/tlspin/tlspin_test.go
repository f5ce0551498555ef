package tlspin_test

import (
	"bytes"
	"crypto/tls"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fileward/fileward/internal/tlspin"
	"github.com/fileward/fileward/internal/tlspin/tlspintest"
)

// server is a TLS server that counts the requests it receives.
type server struct {
	*httptest.Server
	requests atomic.Int64
}

func newServer(t *testing.T, cert tls.Certificate) *server {
	t.Helper()
	s := &server{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		w.Write([]byte("ok"))
	}))
	s.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	s.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// get makes one request through a Verifier built from o to the server at
// url. When host is not empty the request names that host and is dialled
// to the server's address anyway (as a DNS entry would), so names can be
// tested against a loopback server. proxy, when not nil, is an HTTP proxy.
func get(t *testing.T, o tlspin.Options, url, host string, proxy *connectProxy) (string, error) {
	t.Helper()
	var logs logBuf
	o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	v, err := tlspin.New(o)
	if err != nil {
		t.Fatal(err)
	}
	base := &http.Transport{}
	if proxy != nil {
		base.Proxy = http.ProxyURL(proxy.url())
	}
	if host != "" {
		addr := strings.TrimPrefix(url, "https://")
		_, port, _ := net.SplitHostPort(addr)
		url = "https://" + net.JoinHostPort(host, port)
		if proxy == nil {
			base.DialContext = dialTo(addr)
		}
	}
	tr := v.Transport(base)
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	req, _ := http.NewRequest(http.MethodGet, url+"/", nil)
	req.Header.Set("Authorization", "ApiKey c2VjcmV0")
	resp, err := c.Do(req)
	if err == nil {
		resp.Body.Close()
	}
	return logs.String(), err
}

func TestPinRefusesForgedChain(t *testing.T) {
	ca := tlspintest.NewCA(t, "Elasticsearch HTTP CA")
	srv := newServer(t, ca.Forgery(t, "127.0.0.1", "localhost"))
	logs, err := get(t, tlspin.Options{CAFingerprint: ca.Fingerprint(), Component: "elasticsearch"}, srv.URL, "", nil)
	if err == nil {
		t.Fatal("a self-signed leaf with the pinned CA appended was accepted")
	}
	if n := srv.requests.Load(); n != 0 {
		t.Fatalf("the server received %d requests", n)
	}
	if !strings.Contains(logs, "refusing the server's TLS certificate") || !strings.Contains(logs, "pinned CA") {
		t.Errorf("the refusal is not logged with its reason:\n%s", logs)
	}
	// certificate mode checks the chain just the same.
	if _, err := get(t, tlspin.Options{CAFingerprint: ca.Fingerprint(), Mode: tlspin.ModeCertificate}, srv.URL, "", nil); err == nil {
		t.Fatal("verification_mode certificate accepted a forged chain")
	}
}

func TestPinAcceptsChainToCA(t *testing.T) {
	ca := tlspintest.NewCA(t, "Elasticsearch HTTP CA")
	srv := newServer(t, ca.Leaf(t, "127.0.0.1"))
	for _, fp := range []string{ca.Fingerprint(), strings.ToLower(strings.ReplaceAll(ca.Fingerprint(), ":", ""))} {
		if logs, err := get(t, tlspin.Options{CAFingerprint: fp}, srv.URL, "", nil); err != nil {
			t.Fatalf("pin %s: %v\n%s", fp, err, logs)
		}
	}
	if srv.requests.Load() != 2 {
		t.Fatalf("server saw %d requests, want 2", srv.requests.Load())
	}
}

func TestPinOnLeafIsRefused(t *testing.T) {
	// Pinning the leaf (not a CA) is refused: the pin names the CA.
	ca := tlspintest.NewCA(t, "CA")
	cert := ca.Leaf(t, "127.0.0.1")
	srv := newServer(t, cert)
	leaf := srv.Certificate()
	logs, err := get(t, tlspin.Options{CAFingerprint: tlspintest.Fingerprint(leaf)}, srv.URL, "", nil)
	if err == nil || !strings.Contains(logs, "not a CA certificate") {
		t.Fatalf("err %v\n%s", err, logs)
	}
}

func TestWrongPinRefused(t *testing.T) {
	ca := tlspintest.NewCA(t, "CA")
	other := tlspintest.NewCA(t, "other CA")
	srv := newServer(t, ca.Leaf(t, "127.0.0.1"))
	logs, err := get(t, tlspin.Options{CAFingerprint: other.Fingerprint()}, srv.URL, "", nil)
	if err == nil || !strings.Contains(logs, "matches tls.ca_fingerprint") || srv.requests.Load() != 0 {
		t.Fatalf("err %v requests %d\n%s", err, srv.requests.Load(), logs)
	}
}

func TestHostname(t *testing.T) {
	ca := tlspintest.NewCA(t, "CA")
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, ca.PEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	// The certificate names elastic.example only; the server is dialled
	// as 127.0.0.1 or as localhost.
	srv := newServer(t, ca.Leaf(t, "elastic.example"))
	for _, tc := range []struct {
		name string
		o    tlspin.Options
		host string
		ok   bool
	}{
		{"pin, full, wrong IP", tlspin.Options{CAFingerprint: ca.Fingerprint()}, "", false},
		{"pin, full, wrong name", tlspin.Options{CAFingerprint: ca.Fingerprint()}, "localhost", false},
		{"pin, full, right name", tlspin.Options{CAFingerprint: ca.Fingerprint()}, "elastic.example", true},
		{"pin, certificate mode", tlspin.Options{CAFingerprint: ca.Fingerprint(), Mode: tlspin.ModeCertificate}, "", true},
		{"ca_file, full, wrong name", tlspin.Options{CAFile: caFile}, "", false},
		{"ca_file, full, right name", tlspin.Options{CAFile: caFile}, "elastic.example", true},
		{"ca_file, certificate mode", tlspin.Options{CAFile: caFile, Mode: tlspin.ModeCertificate}, "", true},
		{"system roots", tlspin.Options{}, "elastic.example", false},
		{"system roots, certificate mode", tlspin.Options{Mode: tlspin.ModeCertificate}, "", false},
		{"none", tlspin.Options{Mode: tlspin.ModeNone}, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := srv.requests.Load()
			logs, err := get(t, tc.o, srv.URL, tc.host, nil)
			if tc.ok != (err == nil) {
				t.Fatalf("ok=%v, err=%v\n%s", tc.ok, err, logs)
			}
			if got := srv.requests.Load() - before; tc.ok != (got == 1) {
				t.Fatalf("server saw %d requests", got)
			}
			if !tc.ok && !strings.Contains(logs, "reason=") {
				t.Errorf("refusal not logged:\n%s", logs)
			}
		})
	}
}

func TestOptionsChecked(t *testing.T) {
	for _, o := range []tlspin.Options{
		{Mode: "strict-ish"},
		{CAFingerprint: "abcd"},
		{CAFingerprint: strings.Repeat("zz", 32)},
		{CAFile: filepath.Join(t.TempDir(), "missing.pem")},
	} {
		if _, err := tlspin.New(o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	empty := filepath.Join(t.TempDir(), "empty.pem")
	os.WriteFile(empty, []byte("not a certificate\n"), 0o600)
	if _, err := tlspin.New(tlspin.Options{CAFile: empty}); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("empty ca_file: %v", err)
	}
}

// TestPinThroughProxy: through an HTTP proxy (CONNECT), net/http does the
// TLS handshake with the target itself; the pin and the host name check
// must hold there too.
func TestPinThroughProxy(t *testing.T) {
	ca := tlspintest.NewCA(t, "CA")
	proxy := newConnectProxy(t)
	forged := newServer(t, ca.Forgery(t, "127.0.0.1"))
	good := newServer(t, ca.Leaf(t, "127.0.0.1"))
	o := tlspin.Options{CAFingerprint: ca.Fingerprint()}
	if logs, err := get(t, o, forged.URL, "", proxy); err == nil || forged.requests.Load() != 0 || !strings.Contains(logs, "pinned CA") {
		t.Fatalf("forged chain through a proxy: err %v, %d requests\n%s", err, forged.requests.Load(), logs)
	}
	if logs, err := get(t, o, good.URL, "", proxy); err != nil || good.requests.Load() != 1 {
		t.Fatalf("valid chain through a proxy: err %v, %d requests\n%s", err, good.requests.Load(), logs)
	}
	if proxy.tunnels.Load() != 2 {
		t.Fatalf("the proxy tunnelled %d connections, want 2", proxy.tunnels.Load())
	}
}
