package elasticsearch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fileward/fileward/sinks"
	"github.com/fileward/fileward/sinks/elasticsearch/bulktest"
)

const ds = DefaultDataStream

// doc returns a ~1 KB ECS file event with event.id id.
func doc(id string, i int) []byte {
	return fmt.Appendf(nil, `{"@timestamp":"2026-11-26T02:00:00.%09dZ","event":{"kind":"event","category":["file"],"type":["access"],"action":"open","id":%q,"sequence":%d,"module":"fileward","dataset":"fileward.file","provider":"fanotify","created":"2026-11-26T02:00:00.000000001Z"},"file":{"path":"/home/alice/projects/fileward/var/spool/segment-%08d.log","name":"segment-%08d.log","directory":"/home/alice/projects/fileward/var/spool","extension":"log","inode":"%d","device":"2049","mode":"0644","uid":"1000","gid":"1000","owner":"alice","size":%d,"mtime":"2026-11-26T01:59:59.123456789Z"},"fileward":{"access":["read"]},"process":{"pid":%d,"executable":"/usr/bin/python3.12","name":"python3.12","parent":{"pid":1},"entity_id":"aGVsbG8gd29ybGQgZW50aXR5IGlkIGZvciBwcm9jZXNz"},"user":{"id":"1000","name":"alice"},"group":{"id":"1000"},"host":{"id":"4c4c4544-0042-3610-8052-b4c04f4e4e32","name":"build-runner-07.example.internal","os":{"type":"linux","version":"6.18.0"}},"agent":{"type":"fileward","version":"0.1.0","id":"c0ffee00-0000-4000-8000-000000000001"},"ecs":{"version":"8.11.0"}}`,
		i%1e9, id, i, i, i, 100000+i, i*7, 1000+i%30000)
}

func batch(n, from int) *sinks.Batch {
	b := &sinks.Batch{Events: make([]sinks.Event, n)}
	for i := range n {
		id := fmt.Sprintf("evt-%07d", from+i)
		b.Events[i] = sinks.Event{ID: id, Key: "host", Doc: doc(id, from+i)}
	}
	return b
}

func newSink(t testing.TB, srv *bulktest.Server, mod func(*Options)) *Sink {
	t.Helper()
	o := Options{Addresses: []string{srv.URL}, Timeout: 5 * time.Second}
	if mod != nil {
		mod(&o)
	}
	s, err := New(context.Background(), o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// deliver retries like the shipper: failed retryable items are re-sent,
// permanent ones are returned.
func deliver(t *testing.T, s *Sink, b *sinks.Batch) (permanent []sinks.Failure, attempts int) {
	t.Helper()
	pending := b
	orig := make([]int, len(b.Events))
	for i := range orig {
		orig[i] = i
	}
	for attempts = 1; attempts < 1000; attempts++ {
		res, err := s.Send(context.Background(), pending)
		if err != nil {
			if sinks.IsPermanent(err) {
				t.Fatalf("permanent request error: %v", err)
			}
			continue // whole batch again
		}
		var next sinks.Batch
		var nextOrig []int
		for _, f := range res.Failures {
			if sinks.IsPermanent(f.Err) {
				permanent = append(permanent, sinks.Failure{Index: orig[f.Index], Err: f.Err})
				continue
			}
			next.Events = append(next.Events, pending.Events[f.Index])
			nextOrig = append(nextOrig, orig[f.Index])
		}
		if len(next.Events) == 0 {
			return permanent, attempts
		}
		pending, orig = &next, nextOrig
	}
	t.Fatalf("not delivered after %d attempts", attempts)
	return nil, attempts
}

func TestSendAllAcked(t *testing.T) {
	srv := bulktest.New(1)
	defer srv.Close()
	s := newSink(t, srv, nil)
	res, err := s.Send(context.Background(), batch(100, 0))
	if err != nil || len(res.Failures) != 0 {
		t.Fatalf("Send: %v %v", res, err)
	}
	if got := srv.Count(ds); got != 100 {
		t.Fatalf("count %d, want 100", got)
	}
	d, ok := srv.Doc(ds, "evt-0000042")
	if !ok || !bytes.Equal(d, doc("evt-0000042", 42)) {
		t.Fatalf("stored doc differs: %s", d)
	}
	total, gz := srv.BulkRequests()
	if total != 1 || gz != 1 {
		t.Fatalf("bulk requests %d, gzipped %d; want 1 gzipped request", total, gz)
	}
}

func TestDuplicateAfterResendIsDelivered(t *testing.T) {
	srv := bulktest.New(1)
	defer srv.Close()
	s := newSink(t, srv, nil)
	b := batch(10, 0)
	if _, err := s.Send(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	// A crash before the cursor moved: the same batch again, plus new ones.
	b2 := batch(15, 0)
	res, err := s.Send(context.Background(), b2)
	if err != nil || len(res.Failures) != 0 {
		t.Fatalf("re-send: failures %v err %v; 409 must count as delivered", res.Failures, err)
	}
	for id, n := range srv.IDs(ds) {
		if n != 1 {
			t.Fatalf("id %s stored %d times", id, n)
		}
	}
	if srv.Count(ds) != 15 {
		t.Fatalf("count %d", srv.Count(ds))
	}
}

func TestPerItemOutcomes(t *testing.T) {
	srv := bulktest.New(1)
	defer srv.Close()
	s := newSink(t, srv, nil)
	srv.SetPoison(func(d []byte) string {
		if bytes.Contains(d, []byte(`"evt-0000003"`)) {
			return "failed to parse field [file.size] of type [long] in document with id 'evt-0000003'"
		}
		return ""
	})
	b := batch(6, 0)
	b.Events[4].Doc = []byte(`{"event":{"id":"evt-0000004"}}`) // no @timestamp
	b.Events[5].Doc = []byte(`{"@timestamp":"x", broken`)      // not JSON
	res, err := s.Send(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]string{
		3: "mapper_parsing_exception: failed to parse field [file.size]",
		4: "data stream timestamp field [@timestamp] is missing",
		5: "mapper_parsing_exception",
	}
	if len(res.Failures) != len(want) {
		t.Fatalf("failures %v, want %d", res.Failures, len(want))
	}
	for _, f := range res.Failures {
		if !sinks.IsPermanent(f.Err) {
			t.Errorf("item %d: %v should be permanent", f.Index, f.Err)
		}
		var ie *ItemError
		if !errors.As(f.Err, &ie) || ie.Status != 400 {
			t.Errorf("item %d: %v is not a 400 ItemError", f.Index, f.Err)
		}
		if !strings.Contains(f.Err.Error(), want[f.Index]) {
			t.Errorf("item %d: %q lacks %q", f.Index, f.Err, want[f.Index])
		}
	}
	if srv.Count(ds) != 3 {
		t.Fatalf("count %d, want 3", srv.Count(ds))
	}

	// Per-item 429 and 503 are retryable, not permanent.
	srv.SetPoison(nil)
	srv.SetItemFaults(0.5, 0.5)
	res, err = s.Send(context.Background(), batch(20, 100))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, f := range res.Failures {
		var ie *ItemError
		if sinks.IsPermanent(f.Err) || !errors.As(f.Err, &ie) {
			t.Fatalf("item %d: %v should be a retryable ItemError", f.Index, f.Err)
		}
		seen[ie.Status] = true
		if ie.Status == 429 && ie.Type != "es_rejected_execution_exception" {
			t.Fatalf("429 type %q", ie.Type)
		}
	}
	if len(res.Failures) != 20 || !seen[429] || !seen[503] {
		t.Fatalf("want 20 failures with 429 and 503, got %d %v", len(res.Failures), seen)
	}
}

func TestInvalidEventsRefusedLocally(t *testing.T) {
	srv := bulktest.New(1)
	defer srv.Close()
	s := newSink(t, srv, nil)
	b := batch(3, 0)
	b.Events[0].ID = ""
	b.Events[1].Doc = []byte("{\"a\":\n1}")
	res, err := s.Send(context.Background(), b)
	if err != nil || len(res.Failures) != 2 {
		t.Fatalf("%v %v", res, err)
	}
	for _, f := range res.Failures {
		if !sinks.IsPermanent(f.Err) {
			t.Fatalf("%v not permanent", f.Err)
		}
	}
	if srv.Count(ds) != 1 {
		t.Fatal("valid event not delivered")
	}
}

func TestExactlyOnceUnderItemFaults(t *testing.T) {
	srv := bulktest.New(42)
	defer srv.Close()
	srv.SetItemFaults(0.30, 0.10)
	s := newSink(t, srv, nil)
	const batches, per = 8, 400
	totalAttempts := 0
	for k := range batches {
		perm, attempts := deliver(t, s, batch(per, k*per))
		if len(perm) != 0 {
			t.Fatalf("unexpected permanent failures: %v", perm[0].Err)
		}
		totalAttempts += attempts
	}
	ids := srv.IDs(ds)
	if len(ids) != batches*per {
		t.Fatalf("%d ids indexed, want %d", len(ids), batches*per)
	}
	for id, n := range ids {
		if n != 1 {
			t.Fatalf("%s indexed %d times", id, n)
		}
	}
	if totalAttempts <= batches {
		t.Fatalf("faults were not injected (%d attempts)", totalAttempts)
	}
	t.Logf("%d events exactly once after %d bulk attempts", batches*per, totalAttempts)
}

func TestWholeRequestErrors(t *testing.T) {
	srv := bulktest.New(1)
	defer srv.Close()
	var logs bytes.Buffer
	s := newSink(t, srv, func(o *Options) { o.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	for _, st := range []int{429, 503, 401, 403} {
		srv.FailNext(st)
		_, err := s.Send(context.Background(), batch(5, 0))
		var re *RequestError
		if err == nil || sinks.IsPermanent(err) || !errors.As(err, &re) || re.Status != st {
			t.Fatalf("HTTP %d: err %v, want a retryable RequestError", st, err)
		}
	}
	if !strings.Contains(logs.String(), "authentication or authorization failed") {
		t.Fatalf("401/403 not logged loudly: %s", logs.String())
	}
	srv.FailNext(400)
	_, err := s.Send(context.Background(), batch(5, 0))
	if !sinks.IsPermanent(err) {
		t.Fatalf("HTTP 400: %v should be permanent", err)
	}
	if srv.Count(ds) != 0 {
		t.Fatal("documents stored despite request failures")
	}
	// Network error: retryable.
	srv2 := bulktest.New(1)
	s2 := newSink(t, srv2, nil)
	srv2.Close()
	if _, err := s2.Send(context.Background(), batch(1, 0)); err == nil || sinks.IsPermanent(err) {
		t.Fatalf("connection refused: %v should be retryable", err)
	}
}

func TestSplitOn413(t *testing.T) {
	srv := bulktest.New(1)
	defer srv.Close()
	s := newSink(t, srv, nil)
	b := batch(64, 0)
	one := len(doc("evt-0000000", 0)) + 40
	srv.SetMaxContentLength(10 * one) // at most ~10 events per request
	big := sinks.Event{ID: "huge", Doc: []byte(`{"@timestamp":"2026-01-01T00:00:00Z","pad":"` + strings.Repeat("x", 20*one) + `"}`)}
	b.Events = append(b.Events[:30], append([]sinks.Event{big}, b.Events[30:]...)...)
	res, err := s.Send(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Failures) != 1 || res.Failures[0].Index != 30 || !sinks.IsPermanent(res.Failures[0].Err) {
		t.Fatalf("failures %v, want only the oversized event 30, permanent", res.Failures)
	}
	if srv.Count(ds) != 64 {
		t.Fatalf("count %d, want 64", srv.Count(ds))
	}
	total, _ := srv.BulkRequests()
	if total < 8 {
		t.Fatalf("only %d requests: batch was not split", total)
	}
}

func TestSplitMapsIndicesBack(t *testing.T) {
	srv := bulktest.New(1)
	defer srv.Close()
	s := newSink(t, srv, nil)
	srv.FailNext(413, 413)
	srv.SetPoison(func(d []byte) string {
		if bytes.Contains(d, []byte(`"evt-0000013"`)) {
			return "poison"
		}
		return ""
	})
	res, err := s.Send(context.Background(), batch(16, 0))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Failures) != 1 || res.Failures[0].Index != 13 {
		t.Fatalf("failures %v, want index 13", res.Failures)
	}
	if srv.Count(ds) != 15 {
		t.Fatalf("count %d", srv.Count(ds))
	}
}

func TestProductHeaderChecked(t *testing.T) {
	// A server that answers like Elasticsearch but without the product
	// header: the client must refuse it, so nothing counts as delivered.
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"took":1,"errors":false,"items":[{"create":{"status":201}}]}`))
	}))
	defer hs.Close()
	s, err := New(context.Background(), Options{Addresses: []string{hs.URL}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	_, err = s.Send(context.Background(), batch(1, 0))
	if err == nil || !strings.Contains(err.Error(), "not Elasticsearch") {
		t.Fatalf("err %v, want the client's unknown-product error", err)
	}
	// And bulktest sends the header on every answer, including GET /.
	srv := bulktest.New(1)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var info struct {
		Version struct{ Number string } `json:"version"`
		Tagline string                  `json:"tagline"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("X-Elastic-Product") != "Elasticsearch" || !strings.HasPrefix(info.Version.Number, "8.") || info.Tagline == "" {
		t.Fatalf("GET /: header %q body %+v", resp.Header.Get("X-Elastic-Product"), info)
	}
}

func TestTemplateInstalledAndSecretsNotLogged(t *testing.T) {
	srv := bulktest.New(1)
	defer srv.Close()
	var logs bytes.Buffer
	var mu sync.Mutex
	h := slog.NewJSONHandler(&lockedWriter{w: &logs, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelDebug})
	const key, pass = "c2VjcmV0LWFwaS1rZXktdmFsdWU=", "hunter2-very-secret"
	s := newSink(t, srv, func(o *Options) {
		o.SetupTemplate = true
		o.APIKey = key
		o.Logger = slog.New(h)
	})
	if _, ok := srv.Policy("fileward"); !ok {
		t.Fatal("ILM policy not installed")
	}
	body, ok := srv.Template("logs-fileward.file")
	if !ok {
		t.Fatal("index template not installed")
	}
	var tpl struct {
		IndexPatterns []string       `json:"index_patterns"`
		DataStream    map[string]any `json:"data_stream"`
		Priority      int            `json:"priority"`
	}
	if err := json.Unmarshal(body, &tpl); err != nil || tpl.DataStream == nil || tpl.Priority <= 100 ||
		len(tpl.IndexPatterns) != 1 || tpl.IndexPatterns[0] != "logs-fileward.file-*" {
		t.Fatalf("template %s (%v)", body, err)
	}
	if got := srv.LastAuthorization(); !strings.EqualFold(got, "ApiKey "+key) {
		t.Fatalf("Authorization %q", got)
	}
	// Exercise error paths that log, then check no secret leaked.
	srv.FailNext(401)
	_, _ = s.Send(context.Background(), batch(1, 0))
	s2 := newSink(t, srv, func(o *Options) {
		o.Username, o.Password = "fileward", pass
		o.Logger = slog.New(h)
		o.SetupTemplate = true
	})
	srv.FailNext(403)
	_, _ = s2.Send(context.Background(), batch(1, 0))
	if _, err := New(context.Background(), Options{Addresses: []string{"http://fileward:" + pass + "@127.0.0.1:1/"}, SetupTemplate: true, Logger: slog.New(h), Timeout: time.Second}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	out := logs.String()
	mu.Unlock()
	if out == "" {
		t.Fatal("nothing logged; the check would be vacuous")
	}
	for _, secret := range []string{key, pass} {
		if strings.Contains(out, secret) {
			t.Fatalf("secret %q in logs:\n%s", secret, out)
		}
	}
}

type flakyTransport struct{ down atomic.Bool }

func (f *flakyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if f.down.Load() {
		return nil, errors.New("dial tcp: connection refused")
	}
	return http.DefaultTransport.RoundTrip(r)
}

func TestTemplateDeferredUntilReachable(t *testing.T) {
	srv := bulktest.New(1)
	defer srv.Close()
	ft := &flakyTransport{}
	ft.down.Store(true)
	s, err := New(context.Background(), Options{Addresses: []string{srv.URL}, SetupTemplate: true, Transport: ft})
	if err != nil {
		t.Fatalf("New must not fail while Elasticsearch is unreachable: %v", err)
	}
	defer s.Close(context.Background())
	if _, err := s.Send(context.Background(), batch(1, 0)); err == nil || sinks.IsPermanent(err) {
		t.Fatalf("Send before the template is installed: %v, want retryable", err)
	}
	if srv.Count(ds) != 0 {
		t.Fatal("wrote before the template was installed")
	}
	ft.down.Store(false)
	if res, err := s.Send(context.Background(), batch(1, 0)); err != nil || len(res.Failures) > 0 {
		t.Fatalf("Send after recovery: %v %v", res, err)
	}
	if _, ok := srv.Template("logs-fileward.file"); !ok {
		t.Fatal("template not installed on the first Send")
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	for name, o := range map[string]Options{
		"no addresses": {},
		"bad scheme":   {Addresses: []string{"ftp://x"}},
		"bad stream":   {Addresses: []string{"http://x:9200"}, DataStream: "Logs*"},
		"missing ca":   {Addresses: []string{"https://x:9200"}, CAFile: "/nonexistent/ca.pem"},
	} {
		if _, err := New(context.Background(), o); err == nil {
			t.Errorf("%s: New accepted %+v", name, o)
		}
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
