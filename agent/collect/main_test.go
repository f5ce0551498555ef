package collect

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/fileward/fileward/internal/testbin"
)

// buildFileward builds the fileward binary from this tree (testbin.Build)
// once per test binary run and returns its path.
func buildFileward(t *testing.T) string {
	t.Helper()
	fwBuild.once.Do(func() {
		dir, err := os.MkdirTemp("", "fileward-collect-test-")
		if err != nil {
			fwBuild.err = err
			return
		}
		fwBuild.dir = dir
		fwBuild.bin = filepath.Join(dir, "fileward")
		fwBuild.err = testbin.Build(fwBuild.bin)
	})
	if fwBuild.err != nil {
		t.Fatal(fwBuild.err)
	}
	return fwBuild.bin
}

// fwBuild is the binary buildFileward built; TestMain removes it.
var fwBuild struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fwBuild.dir != "" {
		_ = os.RemoveAll(fwBuild.dir)
	}
	os.Exit(code)
}

func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(25 * time.Millisecond)
	}
	return cond()
}
