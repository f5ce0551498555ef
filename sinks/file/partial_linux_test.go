package file

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/fileward/fileward/internal/testtool"
)

// TestDiskFullMidBatchLeavesNoPartialBatch writes a batch larger than the
// sink's write buffer onto a 1 MiB tmpfs: part of it reaches the file before
// the disk fills. The failed Send must truncate that part away, so the file
// holds exactly the batches that succeeded, and a retry after space returns
// writes the batch once.
func TestDiskFullMidBatchLeavesNoPartialBatch(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root (CI runs as root)")
	}
	mnt := testtool.Tmpfs(t, "1m")
	path := filepath.Join(mnt, "events.ndjson")
	var log bytes.Buffer // the truncate succeeds: nothing to report
	s, err := New(Options{Path: path, RotateBytes: 64 << 20, Keep: 1, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	if _, err := s.Send(context.Background(), batch(0, 100)); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	good := st.Size()

	// About 1.9 MiB: several 256 KiB buffer flushes succeed before ENOSPC.
	big := batch(100, 30000)
	_, err = s.Send(context.Background(), big)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Send of a batch larger than the disk = %v, want ENOSPC", err)
	}
	if st, err := os.Stat(path); err != nil || st.Size() != good {
		t.Fatalf("after the failed Send the file is %d bytes (%v), want the %d bytes of the first batch: a partial batch was left", st.Size(), err, good)
	}
	if got := readLines(t, path); len(got) != 100 {
		t.Fatalf("%d lines after the failed Send, want 100", len(got))
	}
	if log.Len() != 0 {
		t.Errorf("the undo of a failed Send logged %q", log.String())
	}

	// Space returns (a smaller batch fits): it is written once, whole.
	if _, err := s.Send(context.Background(), batch(100, 50)); err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, path)
	if len(lines) != 150 {
		t.Fatalf("%d lines, want 150", len(lines))
	}
}
