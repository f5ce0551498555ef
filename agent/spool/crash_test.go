package spool

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The crash child: when FILEWARD_SPOOL_CRASH_DIR is set, the test binary
// appends batches to that spool at full speed and prints "ack <first-id>
// <events>" after each Append returned nil, until it is killed.
const crashEnv = "FILEWARD_SPOOL_CRASH_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashEnv); dir != "" {
		os.Exit(crashChild(dir))
	}
	os.Exit(m.Run())
}

func crashOpts(dir, fsync, compression string) Options {
	return Options{Dir: dir, MaxBytes: 256 << 20, SegmentBytes: 1 << 20, Fsync: fsync, FsyncInterval: 5 * time.Millisecond, Compression: compression}
}

func crashChild(dir string) int {
	start, _ := strconv.ParseUint(os.Getenv("FILEWARD_SPOOL_CRASH_START"), 10, 64)
	s, err := Open(context.Background(), crashOpts(dir, os.Getenv("FILEWARD_SPOOL_CRASH_FSYNC"), os.Getenv("FILEWARD_SPOOL_CRASH_CODEC")))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	const per = 100
	deadline := time.Now().Add(20 * time.Second) // never outlive a dead parent for long
	// Batches of 64 KiB to 512 KiB, built once and only re-stamped with ids,
	// so that most of the child's time is spent inside Append and a kill
	// often lands in the middle of a write.
	// With compression the padding is JSON text, so that records stay
	// large after compression.
	sizes := []int{64 << 10, 256 << 10, 512 << 10}
	bufs := make([][]byte, len(sizes))
	for i, n := range sizes {
		bufs[i] = payload(0, per, 0)
		for len(bufs[i]) < n {
			bufs[i] = append(bufs[i], jsonPayload(uint64(len(bufs[i])), 1)[8:]...)
		}
	}
	for id, k := start, 0; time.Now().Before(deadline); id, k = id+per, k+1 {
		p := bufs[k%len(bufs)]
		for i := uint64(0); i < per; i++ {
			binary.LittleEndian.PutUint64(p[i*8:], id+i)
		}
		if err := s.Append(context.Background(), p, per); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 4
		}
		fmt.Fprintf(os.Stdout, "ack %d %d\n", id, per)
	}
	return 0
}

// TestCrashKill9 SIGKILLs an appending child process at random moments,
// 24 times. After each kill: verify reports nothing but (at most) a torn
// tail of the newest segment; reopening recovers; every event whose Append
// had returned before the kill is readable, by id.
//
// Acks are printed right after Append returns, under fsync "always" (even
// rounds) and "interval" (odd rounds). A SIGKILL does not lose the page
// cache, so this tests the process-crash guarantee; under "interval" a
// power loss may lose up to fsync_interval of acknowledged appends, as
// docs/spool.md says. The rounds rotate through the codecs (none, lz4,
// zstd), so torn compressed records are among the tails recovered.
func TestCrashKill9(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	acked := map[uint64]bool{}
	seen := map[uint64]bool{}
	torn := 0
	const rounds = 24
	for round := 0; round < rounds; round++ {
		fsync := FsyncAlways
		if round%2 == 1 {
			fsync = FsyncInterval
		}
		if round%4 == 3 {
			fsync = FsyncNever
		}
		codec := codecNames[round%len(codecNames)]
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashEnv+"="+dir,
			fmt.Sprintf("FILEWARD_SPOOL_CRASH_START=%d", uint64(round)*10_000_000),
			"FILEWARD_SPOOL_CRASH_FSYNC="+fsync, "FILEWARD_SPOOL_CRASH_CODEC="+codec)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1<<16)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		// Wait for the first ack, then kill at a random moment.
		var got []string
		select {
		case l, ok := <-lines:
			if !ok {
				cmd.Wait()
				t.Fatalf("round %d: child exited early: %s", round, stderr.String())
			}
			got = append(got, l)
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: child never acked: %s", round, stderr.String())
		}
		time.Sleep(time.Duration(rng.IntN(25_000)) * time.Microsecond)
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		for l := range lines {
			got = append(got, l)
		}
		cmd.Wait()
		for _, l := range got {
			var first, n uint64
			if _, err := fmt.Sscanf(l, "ack %d %d", &first, &n); err != nil {
				t.Fatalf("child line %q: %v", l, err)
			}
			for i := uint64(0); i < n; i++ {
				acked[first+i] = true
			}
		}

		rep, err := Inspect(dir, true)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Corrupt() || len(rep.Damage) > 1 {
			t.Fatalf("round %d: verify found more than a torn tail: %+v", round, rep.Damage)
		}
		if len(rep.Damage) == 1 {
			torn++
		}
		s, err := Open(context.Background(), crashOpts(dir, fsync, codec))
		if err != nil {
			t.Fatalf("round %d: reopen: %v", round, err)
		}
		if r := s.Recovery(); r.BadRecords != 0 || len(r.Quarantined) != 0 {
			t.Fatalf("round %d: recovery quarantined after a kill: %+v", round, r)
		}
		r, err := s.Reader("check")
		if err != nil {
			t.Fatal(err)
		}
		for r.Next() {
			rec := r.Record()
			for _, id := range ids(rec.Payload, rec.Events) {
				seen[id] = true
			}
			r.Ack()
		}
		if err := r.Err(); err != nil {
			t.Fatalf("round %d: read after recovery: %v", round, err)
		}
		r.Close()
		s.Close()
		for id := range acked {
			if !seen[id] {
				t.Fatalf("round %d (%s, %s): acknowledged event %d lost", round, fsync, codec, id)
			}
		}
		if rep, err := Inspect(dir, true); err != nil || len(rep.Damage) != 0 {
			t.Fatalf("round %d: verify after recovery: %v %+v", round, err, rep.Damage)
		}
	}
	t.Logf("%d kills, %d acknowledged events all recovered, %d kills left a torn tail", rounds, len(acked), torn)
}
