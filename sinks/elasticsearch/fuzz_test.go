package elasticsearch

import (
	"bytes"
	"log/slog"
	"testing"
)

// FuzzClassify feeds arbitrary Bulk responses to the item classifier: it
// must never panic, and every failure index must be one of the sent ones.
func FuzzClassify(f *testing.F) {
	f.Add([]byte(`{"errors":false,"items":[{"create":{"status":201}},{"create":{"status":409,"error":{"type":"version_conflict_engine_exception","reason":"x"}}}]}`), uint8(2))
	f.Add([]byte(`{"errors":true,"items":[{"create":{"status":400,"error":{"type":"mapper_parsing_exception","reason":"r","caused_by":{"type":"t","reason":"c"}}}}]}`), uint8(1))
	f.Add([]byte(`{"items":[{"index":{"status":201}}]}`), uint8(1))
	f.Add([]byte(`not json`), uint8(3))
	f.Fuzz(func(t *testing.T, body []byte, n uint8) {
		s := &Sink{log: slog.New(slog.DiscardHandler)}
		idx := make([]int, int(n%16)+1)
		for i := range idx {
			idx[i] = 100 + i*3
		}
		for _, split := range []bool{false, true} {
			fails, err := s.classify(bytes.NewReader(body), idx, split)
			if err != nil && split {
				t.Fatalf("split mode returned an error: %v", err)
			}
			valid := map[int]bool{}
			for _, i := range idx {
				valid[i] = true
			}
			for _, f := range fails {
				if !valid[f.Index] || f.Err == nil {
					t.Fatalf("failure %+v for indices %v", f, idx)
				}
			}
		}
	})
}
