package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fileward/fileward/agent/config"

	"github.com/fileward/fileward/agent/spool"
)

// cmdSpool is `fileward spool stat|verify -c FILE`. Both read the spool
// without changing it or taking the writer lock, so they are safe next to a
// running agent. stat exits 0; verify exits 1 when it finds damage that
// loses events, else 0 (a torn tail is the normal state after a crash), and
// 2 for usage or config errors.
func cmdSpool(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		printHelp(stdout, "spool", nil)
		return 0
	}
	if len(args) == 0 || (args[0] != "stat" && args[0] != "verify" && args[0] != "prune") {
		fmt.Fprintln(stderr, "usage: fileward spool stat|verify|prune [-c FILE] (fileward help spool)")
		return 2
	}
	sub := args[0]
	fs := newFlags("spool "+sub, stdout, stderr)
	cfg, _, code, done := commandConfig(fs, args[1:], stdout, stderr)
	if done {
		return code
	}
	if sub == "prune" {
		return spoolPrune(ctx, cfg, stdout, stderr)
	}
	dataDir, err := filepath.Abs(cfg.Agent.DataDir)
	if err != nil {
		fmt.Fprintf(stderr, "fileward spool %s: agent.data_dir: %v\n", sub, err)
		return 2
	}
	dir := filepath.Join(dataDir, "spool")
	rep, err := spool.Inspect(dir, sub == "verify")
	if err != nil {
		fmt.Fprintf(stderr, "fileward spool %s: %v%s\n", sub, err, versionHint(err))
		return 1
	}
	if sub == "stat" {
		printSpoolStat(stdout, rep)
		return 0
	}
	return printSpoolVerify(stdout, rep)
}

func printSpoolStat(w io.Writer, r *spool.Report) {
	running := "no"
	if r.InUse {
		running = "yes"
	}
	fmt.Fprintf(w, "spool:    %s (agent running: %s)\n", r.Dir, running)
	fmt.Fprintf(w, "segments: %d\nbytes:    %d\nrecords:  %d\nevents:   %d held\n", len(r.Segments), r.Bytes, r.Records, r.Events)
	fmt.Fprintf(w, "payload:  %d bytes as written, %d bytes stored: compression ratio %.2f (%s)\n",
		r.RawBytes, r.StoredBytes, r.Ratio(), fmtCodecs(r.Codecs))
	var oldest, newest time.Time
	var firstSeq, endSeq uint64
	for i, s := range r.Segments {
		if i == 0 {
			firstSeq = s.FirstSeq
		}
		endSeq = s.EndSeq
		if oldest.IsZero() && s.Records > 0 {
			oldest = s.Oldest
		}
		if s.Records > 0 {
			newest = s.Newest
		}
	}
	fmt.Fprintf(w, "oldest:   %s (event seq %d)\n", fmtTime(oldest), firstSeq)
	fmt.Fprintf(w, "newest:   %s (event seq %d)\n", fmtTime(newest), endSeq)
	for _, s := range r.Segments {
		fmt.Fprintf(w, "segment   %s  %d bytes  %d records  %d events  seq [%d, %d)\n",
			s.File, s.Bytes, s.Records, s.Events, s.FirstSeq, s.EndSeq)
	}
	if len(r.Cursors) == 0 {
		fmt.Fprintln(w, "cursors:  none (a new sink starts at the oldest data)")
	}
	for _, c := range r.Cursors {
		if c.Err != nil {
			fmt.Fprintf(w, "cursor    %s  unreadable (%v): the sink restarts at the oldest data\n", c.Name, c.Err)
			continue
		}
		fmt.Fprintf(w, "cursor    %s  segment %d offset %d  lag %d events, %d bytes\n",
			c.Name, c.Position.Segment, c.Position.Offset, c.Lag.Events, c.Lag.Bytes)
	}
	for _, q := range r.Quarantined {
		fmt.Fprintf(w, "quarantined %s\n", q)
	}
}

// fmtCodecs lists the records by codec, e.g. "zstd 40 records, none 1 record".
func fmtCodecs(c map[string]int) string {
	if len(c) == 0 {
		return "no records"
	}
	names := slices.Sorted(maps.Keys(c))
	var parts []string
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s %d records", n, c[n]))
	}
	return strings.Join(parts, ", ")
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// printSpoolVerify prints every damaged span and returns the exit code: 1
// only for damage that loses events (events no sink has acknowledged, in a
// damaged span or segment); 0 for a clean spool, for a torn tail (the
// normal state after a crash, which the next start truncates, losing no
// event that was stored whole), and for damage in data every sink already
// acknowledged. While an agent runs, the newest segment's tail may be
// mid-append, so a torn tail then is not even reported as damage.
func printSpoolVerify(w io.Writer, r *spool.Report) int {
	corrupt, torn := 0, 0
	for _, d := range r.Damage {
		what := "corrupt: the next start quarantines the segment, keeps its good records and counts the events lost as reason corrupt"
		switch {
		case d.Torn && r.InUse:
			what = "tail being written (the agent is running): not damage"
		case d.Torn:
			torn++
			what = "torn tail (normal after a crash): the next start truncates it"
		default:
			corrupt++
		}
		fmt.Fprintf(w, "%s: bytes [%d, %d): %s (%v)\n", d.File, d.Start, d.End, what, d.Err)
	}
	for _, q := range r.Quarantined {
		fmt.Fprintf(w, "quarantined earlier: %s\n", q)
	}
	switch {
	case corrupt > 0 && r.LostUnknown:
		fmt.Fprintf(w, "%s: DAMAGED: %d damaged span(s) lose events (how many the sequence numbers cannot tell; at least %d); %d good records in %d segments\n",
			r.Dir, corrupt, r.LostEvents, r.Records, len(r.Segments))
		return 1
	case corrupt > 0 && r.LostEvents > 0:
		fmt.Fprintf(w, "%s: DAMAGED: %d damaged span(s) lose %d events no sink has acknowledged (the next start counts them as reason corrupt); %d good records in %d segments\n",
			r.Dir, corrupt, r.LostEvents, r.Records, len(r.Segments))
		return 1
	case corrupt > 0:
		fmt.Fprintf(w, "%s: ok: %d damaged span(s), but only in events every sink has acknowledged: no event lost; the next start repairs them\n", r.Dir, corrupt)
		return 0
	case torn > 0:
		fmt.Fprintf(w, "%s: ok: torn tail only, the normal state after a crash: the next start truncates it and loses no stored event; %d records, %d events in %d segments, every CRC checked\n",
			r.Dir, r.Records, r.Events, len(r.Segments))
		return 0
	}
	fmt.Fprintf(w, "%s: clean: %d records, %d events in %d segments, every CRC checked\n", r.Dir, r.Records, r.Events, len(r.Segments))
	return 0
}

// spoolPrune removes the cursors of sinks that are no longer configured, so
// that they stop pinning spool segments. It takes the spool's writer lock:
// the agent must be stopped.
func spoolPrune(ctx context.Context, cfg *config.Config, stdout, stderr io.Writer) int {
	dataDir, err := filepath.Abs(cfg.Agent.DataDir)
	if err != nil {
		fmt.Fprintf(stderr, "fileward spool prune: agent.data_dir: %v\n", err)
		return 2
	}
	dir := filepath.Join(dataDir, "spool")
	if _, err := os.Stat(dir); err != nil {
		fmt.Fprintf(stderr, "fileward spool prune: %v\n", err)
		return 1
	}
	sp := cfg.Spool
	s, err := spool.Open(ctx, spool.Options{Dir: dir, MaxBytes: int64(sp.MaxBytes), SegmentBytes: int64(sp.SegmentBytes),
		WhenFull: sp.WhenFull, Fsync: sp.Fsync, FsyncInterval: sp.FsyncInterval.D(), Compression: sp.Compression})
	if err != nil {
		fmt.Fprintf(stderr, "fileward spool prune: %s\n", startFailure(err))
		return 1
	}
	var names []string
	for _, k := range cfg.Sinks {
		names = append(names, k.Name)
	}
	n := 0
	for _, c := range s.Cursors() {
		if slices.Contains(names, c) {
			continue
		}
		if err := s.RemoveCursor(c); err != nil {
			fmt.Fprintf(stderr, "fileward spool prune: %v\n", err)
			s.Close()
			return 1
		}
		fmt.Fprintf(stdout, "removed the cursor of sink %s\n", c)
		n++
	}
	if err := s.Close(); err != nil {
		fmt.Fprintf(stderr, "fileward spool prune: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%d cursors removed\n", n)
	return 0
}
