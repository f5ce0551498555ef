package spool

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// The spool's append path against a plain sequential write of the same
// bytes to the same disk, both with an fsync every second from a
// background goroutine (fsync: interval). Compare MB/s.
var benchSizes = []int{64 << 10, 256 << 10, 1 << 20}

func BenchmarkSpoolAppend(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			dir := b.TempDir()
			s, err := Open(context.Background(), Options{Dir: dir, MaxBytes: 1 << 40, SegmentBytes: 16 << 20,
				Fsync: FsyncInterval, FsyncInterval: time.Second})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			p := payload(0, 1000, size-8000)
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
		})
	}
}

func BenchmarkPlainWrite(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
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
		})
	}
}
