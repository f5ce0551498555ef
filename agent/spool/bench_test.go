package spool

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The spool's append path against a plain sequential write(2) of the same
// payload bytes to a file on the same disk. Both run with fsync "interval":
// a background goroutine fsyncs every second. Before each run, sync(2)
// flushes what earlier runs left dirty, so that neither side pays for the
// other's writeback. BenchmarkAppendVsPlain interleaves the two per size;
// compare MB/s. For stable figures give every run the same volume, e.g.
//
//	go test -run '^$' -bench AppendVsPlain -benchtime 256x -count 5 ./agent/spool/
var benchSizes = []int{64 << 10, 256 << 10, 1 << 20}

func BenchmarkSpoolAppend(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) { benchSpool(b, size) })
	}
}

func BenchmarkPlainWrite(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) { benchPlain(b, size) })
	}
}

func BenchmarkAppendVsPlain(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("spool/%dKiB", size>>10), func(b *testing.B) { benchSpool(b, size) })
		b.Run(fmt.Sprintf("plain/%dKiB", size>>10), func(b *testing.B) { benchPlain(b, size) })
	}
}

func benchSpool(b *testing.B, size int) {
	dir := b.TempDir()
	s, err := Open(context.Background(), Options{Dir: dir, MaxBytes: 1 << 40, SegmentBytes: 16 << 20,
		Fsync: FsyncInterval, FsyncInterval: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	p := payload(0, 1000, size-8000)
	unix.Sync()
	b.SetBytes(int64(size))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := s.Append(context.Background(), p, 1000); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Sync(); err != nil {
		b.Fatal(err)
	}
}

func benchPlain(b *testing.B, size int) {
	f, err := os.Create(filepath.Join(b.TempDir(), "plain"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				f.Sync()
			}
		}
	}()
	p := payload(0, 1000, size-8000)
	unix.Sync()
	b.SetBytes(int64(size))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := f.Write(p); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	close(stop)
	wg.Wait()
}
