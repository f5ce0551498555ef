package bulktest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
)

func post(t testing.TB, url, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(url, "application/x-ndjson", bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("X-Elastic-Product") != "Elasticsearch" {
		t.Fatalf("no product header on %s", url)
	}
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func TestDataStreamOnlyCreate(t *testing.T) {
	s := New(1)
	defer s.Close()
	code, m := post(t, s.URL+"/logs-x-default/_bulk",
		`{"index":{"_id":"1"}}`+"\n"+`{"@timestamp":"2026-01-01T00:00:00Z"}`+"\n"+
			`{"create":{"_id":"2"}}`+"\n"+`{"@timestamp":"2026-01-01T00:00:00Z"}`+"\n"+
			`{"create":{"_id":"2"}}`+"\n"+`{"@timestamp":"2026-01-01T00:00:00Z"}`+"\n")
	if code != 200 || m["errors"] != true {
		t.Fatalf("%d %v", code, m)
	}
	items := m["items"].([]any)
	want := []struct {
		op     string
		status float64
		typ    string
	}{{"index", 400, "illegal_argument_exception"}, {"create", 201, ""}, {"create", 409, "version_conflict_engine_exception"}}
	for i, w := range want {
		it := items[i].(map[string]any)[w.op].(map[string]any)
		if it["status"].(float64) != w.status {
			t.Errorf("item %d: %v", i, it)
		}
		if w.typ != "" && it["error"].(map[string]any)["type"] != w.typ {
			t.Errorf("item %d: %v", i, it)
		}
		if idx, _ := it["_index"].(string); len(idx) < 4 || idx[:4] != ".ds-" {
			t.Errorf("item %d: backing index %q", i, idx)
		}
	}
	// A plain index (no data stream template) accepts index ops.
	code, m = post(t, s.URL+"/plain/_bulk", `{"index":{"_id":"1"}}`+"\n"+`{"a":1}`+"\n")
	if code != 200 || m["errors"] != false || s.Count("plain") != 1 {
		t.Fatalf("%d %v", code, m)
	}
	// Missing final newline: whole-request 400.
	if code, _ := post(t, s.URL+"/_bulk", `{"create":{"_index":"logs-x-default","_id":"9"}}`); code != 400 {
		t.Fatalf("code %d", code)
	}
}

// FuzzBulk: the server must answer any body without panicking, with 200
// and one item per action, or a 4xx.
func FuzzBulk(f *testing.F) {
	f.Add([]byte(`{"create":{"_id":"1"}}` + "\n" + `{"@timestamp":1}` + "\n"))
	f.Add([]byte(`{"delete":{"_id":"1"}}` + "\n"))
	f.Add([]byte(`{"create":{}}` + "\n" + `nope` + "\n"))
	f.Add([]byte("\n\n"))
	s := New(1)
	defer s.Close()
	f.Fuzz(func(t *testing.T, body []byte) {
		code, m := post(t, s.URL+"/logs-f-default/_bulk", string(body))
		if code != 200 && (code < 400 || code >= 500) {
			t.Fatalf("code %d for %q", code, body)
		}
		if code == 200 {
			if _, ok := m["items"]; !ok {
				t.Fatalf("200 without items: %v", m)
			}
		}
	})
}
