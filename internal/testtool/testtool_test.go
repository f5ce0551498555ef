package testtool

import (
	"strings"
	"sync"
	"testing"
)

// TestSyncBuffer: writers and a reader at once (run under -race), and
// every byte written is there at the end.
func TestSyncBuffer(t *testing.T) {
	var b SyncBuffer
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				b.Write([]byte("x\n"))
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if got := strings.Count(b.String(), "x\n"); got != 400 {
		t.Fatalf("%d lines, want 400", got)
	}
}
