package elasticsearch

import (
	"context"
	"testing"

	"github.com/fileward/fileward/sinks"
	"github.com/fileward/fileward/sinks/elasticsearch/bulktest"
	"github.com/fileward/fileward/sinks/sinktest"
)

// TestConformance runs the shared sink suite against the sink and a fresh
// bulktest server per subtest.
func TestConformance(t *testing.T) {
	sinktest.Run(t, func(t *testing.T) (sinks.Sink, sinktest.Verifier) {
		srv := bulktest.New(7)
		t.Cleanup(srv.Close)
		s, err := New(context.Background(), Options{Addresses: []string{srv.URL}, SetupTemplate: true})
		if err != nil {
			t.Fatal(err)
		}
		return s, func(context.Context) (map[string]int, error) { return srv.IDs(DefaultDataStream), nil }
	})
}
