package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/fileward/fileward/agent/spool"
)

// cmdSpool is `fileward spool stat|verify -c FILE`. Both read the spool
// without changing it or taking the writer lock, so they are safe next to a
// running agent. stat exits 0; verify exits 0 when clean and 1 when it finds
// damage (2 for usage or config errors).
func cmdSpool(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "stat" && args[0] != "verify") {
		fmt.Fprintln(stderr, "usage: fileward spool stat|verify [-c FILE]")
		return 2
	}
	sub := args[0]
	fs := flag.NewFlagSet("spool "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("c", "config.example.yaml", "config file")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	cfg, code := loadConfig(*path, stderr)
	if code != 0 {
		return code
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
	fmt.Fprintf(w, "segments: %d\nbytes:    %d\nrecords:  %d\nevents:   %d\n", len(r.Segments), r.Bytes, r.Records, r.Events)
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

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// printSpoolVerify prints every damaged span and returns the exit code.
// While an agent runs, the newest segment's tail may be mid-append, so a
// torn tail then is reported but is not damage.
func printSpoolVerify(w io.Writer, r *spool.Report) int {
	damaged := 0
	for _, d := range r.Damage {
		what := "corrupt: Open quarantines the segment and keeps its good records"
		switch {
		case d.Torn && r.InUse:
			what = "tail being written (the agent is running): not damage"
		case d.Torn:
			what = "torn tail: Open truncates it"
		}
		if !(d.Torn && r.InUse) {
			damaged++
		}
		fmt.Fprintf(w, "%s: bytes [%d, %d): %s (%v)\n", d.File, d.Start, d.End, what, d.Err)
	}
	for _, q := range r.Quarantined {
		fmt.Fprintf(w, "quarantined earlier: %s\n", q)
	}
	if damaged > 0 {
		fmt.Fprintf(w, "%s: %d damaged span(s) in %d segments, %d good records\n", r.Dir, damaged, len(r.Segments), r.Records)
		return 1
	}
	fmt.Fprintf(w, "%s: clean: %d records, %d events in %d segments, every CRC checked\n", r.Dir, r.Records, r.Events, len(r.Segments))
	return 0
}
