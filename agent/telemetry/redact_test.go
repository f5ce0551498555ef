package telemetry

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestHealthRedactsAddresses: a failing check whose error quotes an address
// with credentials is served with the password masked.
func TestHealthRedactsAddresses(t *testing.T) {
	var h Health
	h.Add("sink/siem", func() error {
		return errors.New(`Post "https://elastic:Pw0123456789abcdef@es.example:9200/_bulk": dial tcp: connection refused`)
	})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	body := rec.Body.String()
	if rec.Code != 503 || strings.Contains(body, "Pw0123456789abcdef") || !strings.Contains(body, "https://elastic:***@es.example:9200/_bulk") {
		t.Fatalf("%d %q", rec.Code, body)
	}
}
