package file

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/fileward/fileward/sinks"
	"github.com/fileward/fileward/sinks/sinktest"
)

// TestConformance runs the suite every sink passes. The verifier reads the
// file back and counts each document's event.id.
func TestConformance(t *testing.T) {
	sinktest.Run(t, func(t *testing.T) (sinks.Sink, sinktest.Verifier) {
		path := filepath.Join(t.TempDir(), "events.ndjson")
		s, err := New(Options{Path: path, RotateBytes: 64 << 20, Keep: 2, NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		return s, func(context.Context) (map[string]int, error) {
			f, err := os.Open(path)
			if err != nil {
				return nil, err
			}
			defer f.Close()
			got := map[string]int{}
			sc := bufio.NewScanner(f)
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				var d struct {
					Event struct {
						ID string `json:"id"`
					} `json:"event"`
				}
				if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
					return nil, err
				}
				got[d.Event.ID]++
			}
			return got, sc.Err()
		}
	})
}
