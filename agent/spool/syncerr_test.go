package spool

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestCloseReportsFailedSync: Close returns the error of its final fsync
// (here the directory fsync, the spool's directory having been removed
// under it); closing the files afterwards does not hide it.
func TestCloseReportsFailedSync(t *testing.T) {
	dir := t.TempDir()
	// Under "interval" a new segment leaves the directory to be fsynced;
	// the hour-long interval leaves that to Close.
	o := Options{Dir: dir, MaxBytes: 1 << 20, SegmentBytes: 4096, Fsync: FsyncInterval, FsyncInterval: time.Hour}
	s := mustOpen(t, o)
	room := int(o.SegmentBytes) - segHeaderSize - recHeaderSize // one record a segment
	for i := 0; i < 2; i++ {                                    // the second starts a segment
		if err := s.Append(context.Background(), make([]byte, room), 1); err != nil {
			t.Fatal(err)
		}
	}
	s.mu.Lock()
	pending := s.dirDirty
	s.mu.Unlock()
	if !pending {
		t.Fatal("no directory fsync pending after a new segment")
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	err := s.Close()
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "sync dir") {
		t.Fatalf("Close after the directory went: %v, want the directory fsync's error", err)
	}
	if err := s.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
}

// lockedBuffer is a log destination the syncer goroutine and the test share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestPeriodicSyncLogsFailure: the background fsync logs the fsyncs that
// fail, and only those.
func TestPeriodicSyncLogsFailure(t *testing.T) {
	dir := t.TempDir()
	var logs lockedBuffer
	o := Options{Dir: dir, MaxBytes: 1 << 30, SegmentBytes: 4096, Fsync: FsyncInterval, FsyncInterval: 5 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	s := mustOpen(t, o)
	defer s.Close()
	room := int(o.SegmentBytes) - segHeaderSize - recHeaderSize // one record a segment
	// Remove the directory while a directory fsync is pending: hold the
	// lock so that the syncer cannot take the pending flag in between.
	removed := false
	for i := 0; i < 10000 && !removed; i++ {
		s.mu.Lock()
		if s.dirDirty {
			if err := os.RemoveAll(dir); err != nil {
				s.mu.Unlock()
				t.Fatal(err)
			}
			removed = true
		}
		s.mu.Unlock()
		if !removed {
			if err := s.Append(context.Background(), make([]byte, room), 1); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !removed {
		t.Fatal("no directory fsync pending after 10000 new segments")
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		out := logs.String()
		failed := false
		for _, line := range strings.Split(out, "\n") {
			if !strings.Contains(line, "periodic fsync") {
				continue
			}
			if !strings.Contains(line, "sync dir") || !strings.Contains(line, "no such file") {
				t.Fatalf("a periodic fsync that did not fail the way expected was logged: %s", line)
			}
			failed = true
		}
		if failed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the failed periodic fsync was not logged in 30 s; log:\n%s", out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
