package elasticsearch

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/fileward/fileward/sinks"
	"github.com/fileward/fileward/sinks/elasticsearch/bulktest"
)

// answerTransport sends requests to bulktest, except that answer may reply
// in its place (a proxy in front of the cluster, or an answer of
// Elasticsearch's documented shape that bulktest does not produce), and it
// records every request body, decompressed.
type answerTransport struct {
	answer func(r *http.Request) *http.Response // nil: pass the request on

	mu     sync.Mutex
	bodies [][]byte
}

func (a *answerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		raw, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil {
			return nil, err
		}
		plain := raw
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(bytes.NewReader(raw))
			if err != nil {
				return nil, err
			}
			if plain, err = io.ReadAll(zr); err != nil {
				return nil, err
			}
		}
		a.mu.Lock()
		a.bodies = append(a.bodies, plain)
		a.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(raw))
	}
	if a.answer != nil {
		if resp := a.answer(r); resp != nil {
			resp.Request = r
			return resp, nil
		}
	}
	return http.DefaultTransport.RoundTrip(r)
}

func (a *answerTransport) lastBody() []byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.bodies) == 0 {
		return nil
	}
	return a.bodies[len(a.bodies)-1]
}

// reply builds an HTTP answer; product adds X-Elastic-Product:
// Elasticsearch, which every answer of Elasticsearch 8 carries.
func reply(status int, product bool, contentType, body string) *http.Response {
	h := http.Header{}
	if product {
		h.Set("X-Elastic-Product", "Elasticsearch")
	}
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
	return &http.Response{StatusCode: status, Status: http.StatusText(status), Header: h,
		Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), ProtoMajor: 1, ProtoMinor: 1}
}

func isBulk(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, "/_bulk") }

// TestRequestErrorBodies: a refused bulk request is reported with the
// error's type and reason in each shape Elasticsearch (or a proxy in front
// of it) answers: an error object, with and without caused_by; an error
// string; and a body that is not JSON at all.
func TestRequestErrorBodies(t *testing.T) {
	srv := bulktest.New(1)
	defer srv.Close()
	for _, c := range []struct {
		name      string
		status    int
		ct, body  string
		permanent bool
		typ       string
		msg       string
	}{
		{"proxy page", 502, "text/html", "<html><body>502 Bad Gateway</body></html>", false, "",
			"elasticsearch answered HTTP 502"},
		{"error string", 405, "application/json", `{"error":"Incorrect HTTP method for uri [/_bulk] and method [GET], allowed: [POST, PUT]","status":405}`, true, "",
			"elasticsearch answered HTTP 405: Incorrect HTTP method for uri [/_bulk]"},
		{"error object", 400, "application/json", `{"error":{"root_cause":[{"type":"parse_exception","reason":"request body is required"}],"type":"parse_exception","reason":"request body is required"},"status":400}`, true, "parse_exception",
			"elasticsearch answered HTTP 400: parse_exception: request body is required"},
		{"caused_by", 400, "application/json", `{"error":{"type":"illegal_argument_exception","reason":"bad target","caused_by":{"type":"index_not_found_exception","reason":"no such index [x]"}},"status":400}`, true, "illegal_argument_exception",
			"illegal_argument_exception: bad target (caused by index_not_found_exception: no such index [x])"},
		{"caused_by without reason", 400, "application/json", `{"error":{"type":"illegal_argument_exception","reason":"bad target","caused_by":{"type":"x"}},"status":400}`, true, "illegal_argument_exception",
			"illegal_argument_exception: bad target"},
		{"error object without type", 500, "application/json", `{"error":{"reason":"something"},"status":500}`, false, "",
			"elasticsearch answered HTTP 500"},
		{"no error field", 503, "application/json", `{"status":503}`, false, "",
			"elasticsearch answered HTTP 503"},
	} {
		t.Run(c.name, func(t *testing.T) {
			at := &answerTransport{answer: func(r *http.Request) *http.Response {
				if isBulk(r) {
					return reply(c.status, true, c.ct, c.body)
				}
				return nil
			}}
			s := newSink(t, srv, func(o *Options) { o.Transport = at })
			_, err := s.Send(context.Background(), batch(3, 0))
			var re *RequestError
			if !errors.As(err, &re) {
				t.Fatalf("Send: %v, want a RequestError", err)
			}
			if re.Status != c.status || re.Type != c.typ || sinks.IsPermanent(err) != c.permanent {
				t.Errorf("status %d type %q permanent %v, want %d %q %v", re.Status, re.Type, sinks.IsPermanent(err), c.status, c.typ, c.permanent)
			}
			if got := re.Error(); !strings.HasSuffix(got, c.msg) && !strings.Contains(got, c.msg) {
				t.Errorf("message %q, want it to say %q", got, c.msg)
			}
			if c.name == "caused_by without reason" && strings.Contains(re.Error(), "caused by") {
				t.Errorf("an empty caused_by is appended: %q", re.Error())
			}
			if c.typ == "" && strings.HasSuffix(re.Error(), ": ") {
				t.Errorf("message ends in an empty reason: %q", re.Error())
			}
		})
	}
}

// TestItemOutcomes: each item status of a bulk response maps to libbeat's
// outcome: 2xx and 409 (already indexed) delivered, 429 and every 5xx
// retryable, other 4xx permanent; the error carries type, reason and
// caused_by; only 429 asks the shipper to slow down.
func TestItemOutcomes(t *testing.T) {
	srv := bulktest.New(1)
	defer srv.Close()
	items := []string{
		`{"create":{"_index":"x","_id":"evt-0000000","status":201,"result":"created"}}`,
		`{"create":{"_index":"x","_id":"evt-0000001","status":200,"result":"created"}}`,
		`{"create":{"_index":"x","_id":"evt-0000002","status":409,"error":{"type":"version_conflict_engine_exception","reason":"document already exists"}}}`,
		`{"create":{"_index":"x","_id":"evt-0000003","status":429,"error":{"type":"es_rejected_execution_exception","reason":"rejected execution"}}}`,
		`{"create":{"_index":"x","_id":"evt-0000004","status":500,"error":{"type":"exception","reason":"internal"}}}`,
		`{"create":{"_index":"x","_id":"evt-0000005","status":503,"error":{"type":"unavailable_shards_exception","reason":"primary shard is not active"}}}`,
		`{"create":{"_index":"x","_id":"evt-0000006","status":400,"error":{"type":"document_parsing_exception","reason":"failed to parse field [file.size]","caused_by":{"type":"number_format_exception","reason":"For input string: \"x\""}}}}`,
		`{"create":{"_index":"x","_id":"evt-0000007","status":404,"error":{"type":"index_not_found_exception","reason":"no such index"}}}`,
		`{"create":{"_index":"x","_id":"evt-0000008","status":300}}`,
		`{"index":{"_index":"x","_id":"evt-0000009","status":201}}`,
	}
	body := `{"took":3,"errors":true,"items":[` + strings.Join(items, ",") + `]}`
	at := &answerTransport{answer: func(r *http.Request) *http.Response {
		if isBulk(r) {
			return reply(200, true, "application/json", body)
		}
		return nil
	}}
	s := newSink(t, srv, func(o *Options) { o.Transport = at })
	res, err := s.Send(context.Background(), batch(len(items), 0))
	if err != nil {
		t.Fatal(err)
	}
	type outcome struct {
		status    int
		permanent bool
		throttled bool
		msg       string
	}
	want := map[int]outcome{
		3: {429, false, true, "es_rejected_execution_exception: rejected execution"},
		4: {500, false, false, "status 500: exception: internal"},
		5: {503, false, false, "unavailable_shards_exception"},
		6: {400, true, false, `document_parsing_exception: failed to parse field [file.size] (caused by number_format_exception: For input string: "x")`},
		7: {404, true, false, "index_not_found_exception"},
		8: {300, true, false, "status 300"},
	}
	got := map[int]bool{}
	for _, f := range res.Failures {
		got[f.Index] = true
		if f.Index == 9 {
			if !strings.Contains(f.Err.Error(), "without a create result") {
				t.Errorf("item 9: %v, want a missing create result", f.Err)
			}
			continue
		}
		w, ok := want[f.Index]
		if !ok {
			t.Errorf("item %d failed (%v), want it delivered", f.Index, f.Err)
			continue
		}
		var ie *ItemError
		if !errors.As(f.Err, &ie) || ie.Status != w.status {
			t.Errorf("item %d: %v, want an ItemError of status %d", f.Index, f.Err, w.status)
			continue
		}
		if sinks.IsPermanent(f.Err) != w.permanent || ie.Throttled() != w.throttled {
			t.Errorf("item %d (%d): permanent %v throttled %v, want %v %v", f.Index, w.status, sinks.IsPermanent(f.Err), ie.Throttled(), w.permanent, w.throttled)
		}
		if !strings.Contains(f.Err.Error(), w.msg) {
			t.Errorf("item %d: %q, want it to say %q", f.Index, f.Err, w.msg)
		}
	}
	for i := range want {
		if !got[i] {
			t.Errorf("item %d reported delivered", i)
		}
	}
	if !got[9] {
		t.Error("an item without a create result reported delivered")
	}
	if len(res.Failures) != len(want)+1 {
		t.Errorf("%d failures, want %d", len(res.Failures), len(want)+1)
	}

	// A whole request refused with 429 asks to slow down; 503 does not.
	for _, c := range []struct {
		status    int
		throttled bool
	}{{429, true}, {503, false}} {
		srv.FailNext(c.status)
		s2 := newSink(t, srv, nil)
		_, err := s2.Send(context.Background(), batch(1, 100))
		var re *RequestError
		if !errors.As(err, &re) || re.Throttled() != c.throttled {
			t.Errorf("HTTP %d: %v, want Throttled() %v", c.status, err, c.throttled)
		}
	}
}

// TestOnlyTwoHundredsNeedTheProductHeader: the product check applies to
// successful answers only; a redirect from a proxy without the header is
// reported as the HTTP status it is.
func TestOnlyTwoHundredsNeedTheProductHeader(t *testing.T) {
	srv := bulktest.New(1)
	defer srv.Close()
	for _, c := range []struct {
		status int
		notES  bool
	}{{200, true}, {299, true}, {300, false}, {503, false}} {
		at := &answerTransport{answer: func(r *http.Request) *http.Response {
			return reply(c.status, false, "text/plain", "proxy")
		}}
		s := newSink(t, srv, func(o *Options) { o.Transport = at })
		_, err := s.Send(context.Background(), batch(1, 0))
		var re *RequestError
		switch {
		case err == nil:
			t.Errorf("HTTP %d without the product header: accepted", c.status)
		case c.notES && !errors.Is(err, errNotElasticsearch):
			t.Errorf("HTTP %d without the product header: %v, want the not-Elasticsearch error", c.status, err)
		case !c.notES && (!errors.As(err, &re) || re.Status != c.status):
			t.Errorf("HTTP %d without the product header: %v, want a RequestError of that status", c.status, err)
		}
	}
}

// TestDocumentIDsAreEscaped: an event.id with characters JSON must escape,
// or bytes that are not UTF-8, still yields one valid action line: the
// stored _id is the id (invalid UTF-8 as U+FFFD), and the request body is
// valid UTF-8 JSON that Elasticsearch accepts.
func TestDocumentIDsAreEscaped(t *testing.T) {
	srv := bulktest.New(1)
	defer srv.Close()
	at := &answerTransport{}
	s := newSink(t, srv, func(o *Options) { o.Transport = at })
	ids := []string{`plain-id`, `quote"d`, `back\slash`, "new\nline", "tab\tbed", "nul\x00", `<&>`, "café", "del\x7f", "bad\xffutf8",
		// Ids made only of one kind of byte: the first safe byte of a mixed
		// id sends it through the escaping path anyway.
		`"`, `\`, "\n", "\xff", "\x7f", " "}
	b := &sinks.Batch{}
	for _, id := range ids {
		q, _ := json.Marshal(id)
		b.Events = append(b.Events, sinks.Event{ID: id, Doc: []byte(`{"@timestamp":"2026-11-26T02:00:00Z","event":{"id":` + string(q) + `}}`)})
	}
	res, err := s.Send(context.Background(), b)
	if err != nil || len(res.Failures) != 0 {
		t.Fatalf("Send: %v %v", res.Failures, err)
	}
	body := at.lastBody()
	if !utf8.Valid(body) {
		t.Fatalf("request body is not valid UTF-8:\n%q", body)
	}
	lines := bytes.Split(bytes.TrimSuffix(body, []byte("\n")), []byte("\n"))
	if len(lines) != 2*len(ids) {
		t.Fatalf("%d NDJSON lines for %d events:\n%s", len(lines), len(ids), body)
	}
	stored := srv.IDs(ds)
	for i, id := range ids {
		var a struct {
			Create struct {
				ID string `json:"_id"`
			} `json:"create"`
		}
		if err := json.Unmarshal(lines[2*i], &a); err != nil {
			t.Errorf("action for %q: %v: %s", id, err, lines[2*i])
			continue
		}
		want := strings.ToValidUTF8(id, "\uFFFD")
		if a.Create.ID != want || stored[want] != 1 {
			t.Errorf("id %q: action says %q, stored %d times", id, a.Create.ID, stored[want])
		}
	}
}

// TestCredentialsInAddresses: user:password in an address becomes basic
// auth and wins over api_key; the same credentials on every address are
// fine, different ones are refused, and an address without any is fine.
func TestCredentialsInAddresses(t *testing.T) {
	srv := bulktest.New(1)
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	withUser := "http://agent:pw1@" + host
	s := newSink(t, srv, func(o *Options) {
		o.Addresses = []string{withUser, withUser}
		o.APIKey = "aWQ6a2V5"
	})
	if _, err := s.Send(context.Background(), batch(1, 0)); err != nil {
		t.Fatal(err)
	}
	if got, want := srv.LastAuthorization(), "Basic "+base64.StdEncoding.EncodeToString([]byte("agent:pw1")); got != want {
		t.Fatalf("Authorization %q, want %q (the address's credentials)", got, want)
	}
	for _, addrs := range [][]string{
		{withUser, "http://agent:pw2@" + host},
		{withUser, "http://other:pw1@" + host},
	} {
		_, err := New(context.Background(), Options{Addresses: addrs})
		if err == nil || !strings.Contains(err.Error(), "addresses carry different credentials") {
			t.Errorf("New(%v) = %v, want different credentials refused", addrs, err)
		}
		if err != nil && strings.Contains(err.Error(), "pw") {
			t.Errorf("the error shows a password: %v", err)
		}
	}
	mixed, err := New(context.Background(), Options{Addresses: []string{srv.URL, withUser}})
	if err != nil {
		t.Fatalf("an address without credentials next to one with: %v", err)
	}
	mixed.Close(context.Background())
}

// TestWarnings: New warns when credentials would cross the network in
// clear text and when certificate verification is off, and only then.
func TestWarnings(t *testing.T) {
	srv := bulktest.New(1)
	defer srv.Close()
	tlsSrv := bulktest.NewTLS(1)
	defer tlsSrv.Close()
	const clear = "credentials over http:// are sent unencrypted"
	const noVerify = "TLS certificate verification is off"
	host := strings.TrimPrefix(srv.URL, "http://")
	for _, c := range []struct {
		name  string
		o     Options
		warns []string
	}{
		{"http without credentials", Options{Addresses: []string{srv.URL}}, nil},
		{"http with api_key", Options{Addresses: []string{srv.URL}, APIKey: "aWQ6a2V5"}, []string{clear}},
		{"http with username", Options{Addresses: []string{srv.URL}, Username: "u", Password: "p"}, []string{clear}},
		{"http with credentials in the address", Options{Addresses: []string{"http://u:p@" + host}}, []string{clear}},
		{"https with api_key, verification off", Options{Addresses: []string{tlsSrv.URL}, APIKey: "aWQ6a2V5", InsecureSkipVerify: true}, []string{noVerify}},
		{"https, verification_mode none", Options{Addresses: []string{tlsSrv.URL}, VerificationMode: "none"}, []string{noVerify}},
		{"https verified", Options{Addresses: []string{tlsSrv.URL}, VerificationMode: "full"}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			var logs bytes.Buffer
			c.o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			s, err := New(context.Background(), c.o)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(context.Background())
			for _, w := range []string{clear, noVerify} {
				want := false
				for _, x := range c.warns {
					want = want || x == w
				}
				if got := strings.Contains(logs.String(), w); got != want {
					t.Errorf("warning %q logged: %v, want %v\n%s", w, got, want, logs.String())
				}
			}
		})
	}
}

// TestAuthFailuresLogged: 401 and 403 are logged as errors that name the
// fix, each on its own; other refusals are not logged as auth failures.
func TestAuthFailuresLogged(t *testing.T) {
	srv := bulktest.New(1)
	defer srv.Close()
	const msg = "authentication or authorization failed"
	for _, c := range []struct {
		status int
		logged bool
	}{{401, true}, {403, true}, {429, false}, {503, false}} {
		var logs bytes.Buffer
		s := newSink(t, srv, func(o *Options) { o.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
		srv.FailNext(c.status)
		if _, err := s.Send(context.Background(), batch(1, 0)); err == nil || sinks.IsPermanent(err) {
			t.Fatalf("HTTP %d: %v, want a retryable error", c.status, err)
		}
		if got := strings.Contains(logs.String(), msg); got != c.logged {
			t.Errorf("HTTP %d: auth failure logged %v, want %v\n%s", c.status, got, c.logged, logs.String())
		}
	}
}

// TestTemplateSetupAnswers: with setup_template, a setup request
// Elasticsearch refuses as bad (4xx other than auth, or any non-2xx it
// cannot retry) fails New, naming the step; one it may accept later (503,
// 401) only defers the installation to the first Send, which then
// completes it.
func TestTemplateSetupAnswers(t *testing.T) {
	for _, c := range []struct {
		status  int
		newFail bool
		body    string
	}{
		{400, true, `{"error":{"type":"x_content_parse_exception","reason":"[1:2] [lifecycle_policy] unknown field [x]"},"status":400}`},
		{300, true, ""},
		{503, false, `{"error":{"type":"cluster_block_exception","reason":"blocked"},"status":503}`},
		{401, false, `{"error":{"type":"security_exception","reason":"unable to authenticate"},"status":401}`},
	} {
		srv := bulktest.New(1)
		failILM := true
		var mu sync.Mutex
		at := &answerTransport{answer: func(r *http.Request) *http.Response {
			mu.Lock()
			defer mu.Unlock()
			if failILM && strings.HasPrefix(r.URL.Path, "/_ilm/policy/") {
				return reply(c.status, true, "application/json", c.body)
			}
			return nil
		}}
		var logs bytes.Buffer
		s, err := New(context.Background(), Options{Addresses: []string{srv.URL}, SetupTemplate: true, Transport: at,
			Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if c.newFail {
			if err == nil || !sinks.IsPermanent(err) || !strings.Contains(err.Error(), "put ILM policy fileward") {
				t.Errorf("HTTP %d to the ILM policy: New = %v, want a permanent error naming the step", c.status, err)
			}
			if err == nil {
				s.Close(context.Background())
			}
			srv.Close()
			continue
		}
		if err != nil {
			t.Errorf("HTTP %d to the ILM policy: New failed: %v", c.status, err)
			srv.Close()
			continue
		}
		if !strings.Contains(logs.String(), "index template not installed yet") {
			t.Errorf("HTTP %d: no deferral logged:\n%s", c.status, logs.String())
		}
		if _, ok := srv.Template("logs-fileward.file"); ok {
			t.Errorf("HTTP %d: template installed although the policy failed", c.status)
		}
		mu.Lock()
		failILM = false
		mu.Unlock()
		if res, err := s.Send(context.Background(), batch(1, 0)); err != nil || len(res.Failures) != 0 {
			t.Errorf("HTTP %d: first Send after recovery: %v %v", c.status, res, err)
		}
		if _, ok := srv.Template("logs-fileward.file"); !ok {
			t.Errorf("HTTP %d: template not installed by the first Send", c.status)
		}
		s.Close(context.Background())
		srv.Close()
	}
}
