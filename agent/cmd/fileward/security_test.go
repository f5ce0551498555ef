package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fileward/fileward/internal/testtool"
	"github.com/fileward/fileward/internal/tlspin/tlspintest"
	"github.com/fileward/fileward/sinks/elasticsearch/bulktest"
)

// uniqueSecret is a password no output could hold by chance.
func uniqueSecret(t *testing.T) string {
	t.Helper()
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "Pw" + hex.EncodeToString(b)
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func writeFile(t *testing.T, path, body string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

var metricsAtRe = regexp.MustCompile(`metrics on http://([0-9.:]+)/metrics`)

// TestPasswordInAddressNeverPrinted runs the agent with the password of an
// Elasticsearch sink written in its address (one sink reachable, one not,
// so both the start-up and the failure paths print), then check-config on
// the same file, check-config on a wrong scheme and the collector, and
// looks for the password in everything they print and serve.
func TestPasswordInAddressNeverPrinted(t *testing.T) {
	secret := uniqueSecret(t)
	dir := t.TempDir()
	es := bulktest.New(1)
	defer es.Close()
	live := strings.Replace(es.URL, "http://", "http://elastic:"+secret+"@", 1)
	dead := "http://elastic:" + secret + "@" + closedPort(t)
	cfg := writeFile(t, filepath.Join(dir, "c.yaml"), fmt.Sprintf(`agent: {data_dir: %[1]s/data, heartbeat: 0s, shutdown_timeout: 1s}
source: {type: replay, replay: {path: demo/eslogger-demo.ndjson, rate: 200, loop: true}}
batch: {max_wait: 50ms}
sinks:
  - {name: local, type: file, file: {path: %[1]s/out/events.ndjson}}
  - name: siem
    type: elasticsearch
    elasticsearch: {addresses: ["%[2]s"], allow_insecure_credentials: true}
    backoff: {initial: 50ms, max: 200ms}
  - name: siem-down
    type: elasticsearch
    elasticsearch: {addresses: ["%[3]s"], allow_insecure_credentials: true, timeout: 1s}
    backoff: {initial: 50ms, max: 200ms}
metrics: {listen: "127.0.0.1:0"}
collector:
  kafka: {brokers: ["%[4]s"], timeout: 1s}
  elasticsearch: {addresses: ["%[3]s"], allow_insecure_credentials: true, timeout: 1s}
  dead_letter: %[1]s/dl/collector.ndjson
`, dir, live, dead, closedPort(t)))
	var everything strings.Builder

	// run
	cmd := exec.Command(binary, "run", "-c", cfg, "-log-level", "debug")
	var out, errb testtool.SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !metricsAtRe.MatchString(errb.String()) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	m := metricsAtRe.FindStringSubmatch(errb.String())
	if m == nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("no start-up banner:\n%s", errb.String())
	}
	// Let the live sink deliver and the dead one fail a few times.
	for es.Count("logs-fileward.file-default") == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second)
	metrics := httpGet(t, "http://"+m[1]+"/metrics")
	health := httpGet(t, "http://"+m[1]+"/healthz")
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("run: %v", err)
	}
	if es.Count("logs-fileward.file-default") == 0 {
		t.Errorf("the sink with credentials in its address delivered nothing:\n%s", errb.String())
	}
	if !strings.Contains(errb.String(), "http://elastic:***@127.0.0.1:") {
		t.Errorf("the banner does not show the redacted address:\n%s", errb.String())
	}
	// Files holding event data: 0600 in 0700 directories.
	for path, want := range map[string]os.FileMode{
		dir + "/out": 0o700 | os.ModeDir, dir + "/out/events.ndjson": 0o600,
		dir + "/data": 0o700 | os.ModeDir, dir + "/data/spool": 0o700 | os.ModeDir,
	} {
		if st, err := os.Stat(path); err != nil || st.Mode() != want {
			t.Errorf("%s: %v %v, want %v", path, st.Mode(), err, want)
		}
	}
	if !strings.Contains(metrics, "fileward_sink_errors_total") || !strings.Contains(health, "sink/siem-down") {
		t.Errorf("metrics or healthz not as expected:\n%s\n%s", metrics, health)
	}
	for name, s := range map[string]string{"run stdout": out.String(), "run stderr": errb.String(), "/metrics": metrics, "/healthz": health} {
		everything.WriteString(s)
		if strings.Contains(s, secret) {
			t.Errorf("%s holds the password:\n%s", name, s)
		}
	}

	// check-config: the warning names the address, redacted.
	o, e, code := fw(t, nil, "check-config", "-c", cfg)
	if code != 0 || !strings.Contains(e, "elastic:***@") || !strings.Contains(e, "warning:") {
		t.Errorf("check-config: exit %d\n%s%s", code, o, e)
	}
	everything.WriteString(o + e)

	// check-config with a wrong scheme.
	bad := writeFile(t, filepath.Join(dir, "bad.yaml"), fmt.Sprintf(`sinks:
  - name: siem
    type: elasticsearch
    elasticsearch: {addresses: ["htp://elastic:%s@127.0.0.1:9200"]}
`, secret))
	o, e, code = fw(t, nil, "check-config", "-c", bad)
	if code != 2 || !strings.Contains(e, "htp://elastic:***@127.0.0.1:9200") {
		t.Errorf("check-config wrong scheme: exit %d\n%s%s", code, o, e)
	}
	everything.WriteString(o + e)
	o, e, code = fw(t, nil, "run", "-c", bad)
	if code != 2 {
		t.Errorf("run with a wrong scheme: exit %d\n%s", code, e)
	}
	everything.WriteString(o + e)

	// collect: Elasticsearch down, Kafka down; it starts, serves /healthz.
	col := exec.Command(binary, "collect", "-c", cfg)
	var cout, cerr testtool.SyncBuffer
	col.Stdout, col.Stderr = &cout, &cerr
	if err := col.Start(); err != nil {
		t.Fatal(err)
	}
	addrRe := regexp.MustCompile(`"addr":"([0-9.:]+)"`)
	deadline = time.Now().Add(20 * time.Second)
	for !addrRe.MatchString(cerr.String()) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if a := addrRe.FindStringSubmatch(cerr.String()); a != nil {
		time.Sleep(1500 * time.Millisecond)
		everything.WriteString(httpGet(t, "http://"+a[1]+"/healthz"))
		everything.WriteString(httpGet(t, "http://"+a[1]+"/metrics"))
	} else {
		t.Errorf("collect did not serve metrics:\n%s", cerr.String())
	}
	col.Process.Signal(syscall.SIGTERM)
	col.Wait()
	everything.WriteString(cout.String() + cerr.String())
	if strings.Contains(everything.String(), secret) {
		t.Fatalf("the password appears in the output:\n%s", everything.String())
	}
}

// TestInsecureCredentialsRefused: credentials over http:// (Elasticsearch)
// or SASL without TLS (Kafka) are configuration errors unless
// allow_insecure_credentials says so, and then a warning.
func TestInsecureCredentialsRefused(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, block, path string
	}{
		{"elasticsearch api_key", `type: elasticsearch
    elasticsearch: {addresses: ["https://a:9200", "http://127.0.0.1:9200"], api_key: aWQ6a2V5%s}`, "sinks[0].elasticsearch.addresses[1]"},
		{"elasticsearch password", `type: elasticsearch
    elasticsearch: {addresses: ["http://127.0.0.1:9200"], username: elastic, password: changeme%s}`, "sinks[0].elasticsearch.addresses[0]"},
		{"elasticsearch address userinfo", `type: elasticsearch
    elasticsearch: {addresses: ["http://elastic:changeme@127.0.0.1:9200"]%s}`, "sinks[0].elasticsearch.addresses[0]"},
		{"kafka sasl", `type: kafka
    kafka: {brokers: ["127.0.0.1:9092"], sasl: {mechanism: SCRAM-SHA-512, username: u, password: p}%s}`, "sinks[0].kafka.sasl"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := "agent: {data_dir: " + dir + "/data}\nsinks:\n  - name: s\n    " + tc.block + "\nmetrics: {listen: \"\"}\n"
			refused := writeFile(t, filepath.Join(dir, "refused.yaml"), fmt.Sprintf(body, ""))
			o, e, code := fw(t, nil, "check-config", "-c", refused)
			if code != 2 || o != "" || !strings.HasPrefix(e, refused+":5: "+tc.path+": ") || !strings.Contains(e, "allow_insecure_credentials: true") {
				t.Errorf("refused: exit %d\nstdout %q\nstderr %s", code, o, e)
			}
			if _, e, code := fw(t, nil, "run", "-c", refused); code != 2 || !strings.Contains(e, "unencrypted") {
				t.Errorf("run refused: exit %d\n%s", code, e)
			}
			allowed := writeFile(t, filepath.Join(dir, "allowed.yaml"), fmt.Sprintf(body, ", allow_insecure_credentials: true"))
			o, e, code = fw(t, nil, "check-config", "-c", allowed)
			if code != 0 || o != "ok\n" || !strings.HasPrefix(e, allowed+":5: "+tc.path+": warning: ") {
				t.Errorf("allowed: exit %d\nstdout %q\nstderr %s", code, o, e)
			}
			if strings.Contains(e, "changeme") {
				t.Errorf("warning prints the password: %s", e)
			}
		})
	}
}

// TestFileModeChecked: file.mode widens the file sink's output; anything
// but read/write bits with the owner's is a config error.
func TestFileModeChecked(t *testing.T) {
	dir := t.TempDir()
	for mode, ok := range map[string]bool{"0640": true, `"0644"`: true, "0o600": true, "0755": false, "0400": false, "rw-r-----": false} {
		cfg := writeFile(t, filepath.Join(dir, "c.yaml"), "sinks:\n  - {name: local, type: file, file: {path: "+dir+"/e.ndjson, mode: "+mode+"}}\n")
		o, e, code := fw(t, nil, "check-config", "-c", cfg)
		if ok && code != 0 || !ok && (code != 2 || !strings.Contains(e, cfg+":2: sinks[0].file.mode: ")) {
			t.Errorf("mode %s: exit %d %q %q", mode, code, o, e)
		}
	}
}

// TestMetricsListenWarning: /metrics and /healthz have no authentication, so
// a non-loopback metrics.listen is a warning (not an error).
func TestMetricsListenWarning(t *testing.T) {
	dir := t.TempDir()
	for listen, warn := range map[string]bool{"127.0.0.1:9464": false, "localhost:9464": false, "[::1]:9464": false, "0.0.0.0:9464": true, ":9464": true} {
		cfg := writeFile(t, filepath.Join(dir, "c.yaml"), "metrics:\n  listen: \""+listen+"\"\n")
		o, e, code := fw(t, nil, "check-config", "-c", cfg)
		if code != 0 || o != "ok\n" || warn != strings.HasPrefix(e, cfg+":2: metrics.listen: warning: ") {
			t.Errorf("listen %s: exit %d %q %q", listen, code, o, e)
		}
	}
}

// TestPinnedCAAgainstForgery runs the agent with tls.ca_fingerprint against
// a man in the middle presenting his own self-signed certificate with the
// pinned CA appended: the agent logs why it refuses and sends nothing (no
// request, so no Authorization header). Against a server whose certificate
// the CA signed for the dialled address it delivers.
func TestPinnedCAAgainstForgery(t *testing.T) {
	ca := tlspintest.NewCA(t, "Elasticsearch security auto-configuration HTTP CA")
	mitm := bulktest.NewTLSWithCert(1, ca.Forgery(t, "127.0.0.1", "localhost"))
	defer mitm.Close()
	real := bulktest.NewTLSWithCert(2, ca.Leaf(t, "127.0.0.1"))
	defer real.Close()
	dir := t.TempDir()
	cfg := writeFile(t, filepath.Join(dir, "c.yaml"), fmt.Sprintf(`agent: {data_dir: %[1]s/data, heartbeat: 0s, shutdown_timeout: 1s}
source: {type: replay, replay: {path: demo/eslogger-demo.ndjson}}
batch: {max_wait: 50ms}
sinks:
  - name: mitm
    type: elasticsearch
    elasticsearch: {addresses: ["%[2]s"], api_key: bWl0bTpzZWNyZXQ=, tls: {ca_fingerprint: "%[4]s"}}
    backoff: {initial: 50ms, max: 200ms}
  - name: real
    type: elasticsearch
    elasticsearch: {addresses: ["%[3]s"], api_key: aWQ6a2V5, tls: {ca_fingerprint: "%[4]s"}}
metrics: {listen: ""}
`, dir, mitm.URL, real.URL, ca.Fingerprint()))
	cmd := exec.Command(binary, "run", "-c", cfg)
	var errb testtool.SyncBuffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for (real.Count("logs-fileward.file-default") == 0 || !strings.Contains(errb.String(), "refusing the server's TLS certificate")) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // a few more attempts on the forged server
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("agent: %v", err)
	}
	if n := mitm.AllRequests(); n != 0 || mitm.LastAuthorization() != "" {
		t.Fatalf("the forged server received %d requests (Authorization %q)", n, mitm.LastAuthorization())
	}
	for _, l := range strings.Split(errb.String(), "\n") {
		if strings.Contains(l, "refusing") {
			t.Logf("agent log: %s", l)
			break
		}
	}
	if !strings.Contains(errb.String(), "refusing the server's TLS certificate") || !strings.Contains(errb.String(), "pinned CA") {
		t.Errorf("the refusal is not logged with its reason:\n%s", errb.String())
	}
	if real.Count("logs-fileward.file-default") == 0 || real.LastAuthorization() != "APIKey aWQ6a2V5" {
		t.Errorf("the genuine server got %d events\n%s", real.Count("logs-fileward.file-default"), errb.String())
	}
}

// TestCollectInsecureCredentialsRefused: `fileward collect` refuses
// credentials over plaintext as the agent does (exit 2, FILE:LINE: key).
func TestCollectInsecureCredentialsRefused(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, filepath.Join(dir, "c.yaml"), `collector:
  kafka: {brokers: ["127.0.0.1:9092"], group_id: g}
  elasticsearch: {addresses: ["http://elastic:changeme@127.0.0.1:9200"]}
  dead_letter: `+dir+`/dl.ndjson
metrics: {listen: ""}
`)
	_, e, code := fw(t, nil, "collect", "-c", cfg)
	if code != 2 || !strings.HasPrefix(e, cfg+":3: collector.elasticsearch.addresses[0]: http://elastic:***@127.0.0.1:9200 would send") || strings.Contains(e, "changeme") {
		t.Fatalf("collect: exit %d\n%s", code, e)
	}
}
