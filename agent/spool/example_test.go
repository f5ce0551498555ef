package spool_test

import (
	"context"
	"fmt"
	"os"

	"github.com/fileward/fileward/agent/spool"
)

// One writer appends records; each sink reads them through its own cursor
// and acknowledges what its destination accepted.
func Example() {
	dir, _ := os.MkdirTemp("", "spool-example-")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	s, err := spool.Open(ctx, spool.Options{Dir: dir, MaxBytes: 1 << 20, SegmentBytes: 64 << 10,
		OnDrop: func(n uint64) { fmt.Println("dropped", n) }})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	s.Append(ctx, []byte("batch one"), 3)
	s.Append(ctx, []byte("batch two"), 2)

	r, _ := s.Reader("kafka")
	defer r.Close()
	for r.Next() {
		rec := r.Record()
		fmt.Printf("%s: %d events from seq %d\n", rec.Payload, rec.Events, rec.Seq)
		r.Ack() // after the destination acknowledged
	}
	if err := r.Err(); err != nil {
		fmt.Println(err)
	}
	lag, _ := s.Lag("kafka")
	fmt.Println("lag", lag.Events)
	// Output:
	// batch one: 3 events from seq 0
	// batch two: 2 events from seq 3
	// lag 0
}
