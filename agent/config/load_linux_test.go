package config

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestLoadRefusesLargeStream: a config that is not a regular file (a FIFO,
// /dev/stdin) cannot be sized by stat; reading stops after 1 MiB + 1.
func TestLoadRefusesLargeStream(t *testing.T) {
	p := filepath.Join(t.TempDir(), "config.fifo")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan int64, 1)
	go func() {
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			done <- -1
			return
		}
		defer f.Close()
		chunk := bytes.Repeat([]byte("# padding\n"), 1<<12)
		var n int64
		for n < 8<<20 {
			k, err := f.Write(chunk)
			n += int64(k)
			if err != nil {
				break // the reader stopped and closed: EPIPE
			}
		}
		done <- n
	}()
	_, err := Load(p)
	if err == nil || !strings.Contains(err.Error(), "larger than 1 MiB") || !strings.HasPrefix(err.Error(), p+": ") {
		t.Fatalf("Load: %v", err)
	}
	if n := <-done; n >= 8<<20 {
		t.Fatalf("the writer could write %d bytes: Load read the whole stream", n)
	}
}
