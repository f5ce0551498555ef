package ship_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/fileward/fileward/agent/ship"
	"github.com/fileward/fileward/agent/spool"
	"github.com/fileward/fileward/sinks/file"
)

// BenchmarkSpoolToFileSink: batches of 1000 events (~330-byte documents)
// are appended to a spool (fsync interval) while a Shipper delivers them to
// the NDJSON file sink (fsync per batch). The timer stops when the last
// event is acknowledged; events/s is reported.
func BenchmarkSpoolToFileSink(b *testing.B) {
	dir := b.TempDir()
	s, err := spool.Open(context.Background(), spool.Options{Dir: filepath.Join(dir, "spool"), MaxBytes: 8 << 30,
		SegmentBytes: 16 << 20, Fsync: spool.FsyncInterval, FsyncInterval: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	fs, err := file.New(file.Options{Path: filepath.Join(dir, "out", "events.ndjson"), RotateBytes: 1 << 30, Keep: 1})
	if err != nil {
		b.Fatal(err)
	}
	sh, err := ship.New(ship.Options{Name: "file", Sink: fs, Spool: s, DeadLetterDir: filepath.Join(dir, "dl")})
	if err != nil {
		b.Fatal(err)
	}
	const per = 1000
	payloads := make([][]byte, 8)
	for i := range payloads {
		payloads[i] = batch(i*per, per, 280)
	}
	b.SetBytes(int64(len(payloads[0])))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	b.ResetTimer()
	go func() { done <- sh.Run(ctx) }()
	for i := 0; i < b.N; i++ {
		if err := s.Append(ctx, payloads[i%len(payloads)], per); err != nil {
			b.Fatal(err)
		}
	}
	sh.Drain()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*per)/b.Elapsed().Seconds(), "events/s")
	fs.Close(context.Background())
}
