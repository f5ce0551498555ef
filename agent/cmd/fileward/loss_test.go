package main

import (
	binenc "encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fileward/fileward/internal/testtool"
	"github.com/fileward/fileward/schema"
	"github.com/fileward/fileward/sinks/elasticsearch/bulktest"
)

// ecsInput writes n ECS file events (the demo, converted, repeated) for a
// replay with format ecs; the replay numbers them 1..n in event.sequence.
func ecsInput(t *testing.T, path string, n int) {
	t.Helper()
	ecs, errOut, code := fw(t, nil, "convert", "--from", "eslogger", "--host-name", "h", "--host-id", "i",
		filepath.Join("demo", "eslogger-demo.ndjson"))
	if code != 0 {
		t.Fatalf("convert: %d %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(ecs), "\n")
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteString(lines[i%len(lines)])
		b.WriteByte('\n')
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// streamDocs reads every document the test server stored, decoded.
func streamDocs(srv *bulktest.Server) (docs []map[string]any, dupes int) {
	// File events and the agent's own documents (loss reports, heartbeats)
	// go to streams of their own: read them all.
	for _, stream := range srv.Streams() {
		for id, n := range srv.IDs(stream) {
			if n != 1 {
				dupes++
			}
			raw, ok := srv.Doc(stream, id)
			if !ok {
				continue
			}
			var d map[string]any
			if json.Unmarshal(raw, &d) == nil {
				docs = append(docs, d)
			}
		}
	}
	return docs, dupes
}

// tally splits the stream into file and process events (their event.sequence) and the
// sum of loss counts by reason; maxTotal is the highest
// fileward.lost.total.<reason> seen per reason.
func tally(docs []map[string]any) (seqs []int, lost, maxTotal map[string]uint64) {
	lost, maxTotal = map[string]uint64{}, map[string]uint64{}
	for _, d := range docs {
		action, _ := lookup(d, "event.action")
		if action == "events_lost" {
			r, _ := lookup(d, "fileward.lost.reason")
			c, _ := lookup(d, "fileward.lost.count")
			lost[r.(string)] += uint64(c.(float64))
			for x := schema.LossReason(0); x < schema.LossReasonCount; x++ {
				if v, ok := lookup(d, "fileward.lost.total."+x.String()); ok && uint64(v.(float64)) > maxTotal[x.String()] {
					maxTotal[x.String()] = uint64(v.(float64))
				}
			}
			continue
		}
		// File events, and exec events, which are process start events
		// of their own dataset.
		if ds, _ := lookup(d, "event.dataset"); ds == "fileward.file" || ds == "fileward.process" {
			s, _ := lookup(d, "event.sequence")
			seqs = append(seqs, int(s.(float64)))
		}
	}
	sort.Ints(seqs)
	return seqs, lost, maxTotal
}

// TestDropOldestLossIsExactInTheStream is the reproduction: 20,000
// events into a 2 MiB spool (256 KiB segments) under drop_oldest while the
// only sink (Elasticsearch, the in-repo test server answering 503 to every
// bulk request) is down, then the sink comes up. The stream must account for
// every event: delivered file events plus the sum of the loss counts equal
// 20,000 exactly, although drop_oldest deletes segments holding loss
// reports; the delivered events are the newest; the cumulative totals agree
// with the counts.
func TestDropOldestLossIsExactInTheStream(t *testing.T) { spoolFullScenario(t, "drop_oldest") }

// TestDropNewestLossIsExactInTheStream is the same scenario under
// drop_newest: the spool refuses the pipeline's appends (its refusal
// branch, through the real agent and spool), every refused event is
// reported, and the oldest events are the ones delivered.
func TestDropNewestLossIsExactInTheStream(t *testing.T) { spoolFullScenario(t, "drop_newest") }

func spoolFullScenario(t *testing.T, whenFull string) {
	const n = 20000
	dir := t.TempDir()
	in := filepath.Join(dir, "in.ndjson")
	ecsInput(t, in, n)
	srv := bulktest.New(12)
	defer srv.Close()
	srv.SetRequestFaults(0, 1) // down: every _bulk answers 503
	cfg := filepath.Join(dir, "c.yaml")
	esReplayConfig{dataDir: filepath.Join(dir, "data"), shutdown: "2s", in: in, rate: 20000, esURL: srv.URL, maxEvents: 64,
		extra: "queue: {capacity: 65536}\nspool: {max_bytes: 2MiB, segment_bytes: 256KiB, when_full: " + whenFull + "}\n"}.write(t, cfg)
	proc := startRun(t, cfg)
	proc.waitLog("replay reached the end of its input", 0)
	deadline := time.Now().Add(60 * time.Second)
	// Let the loss reports settle (one a second while drop_oldest still
	// drops): bringing the sink up while a report's append drops a
	// segment whose batch is in flight could deliver that batch and
	// count it lost too (an over-report the spool documents).
	last, stable := -1, time.Now()
	for time.Since(stable) < 2500*time.Millisecond && time.Now().Before(deadline) {
		if c := strings.Count(proc.log(), `msg="events lost"`); c != last {
			last, stable = c, time.Now()
		}
		time.Sleep(100 * time.Millisecond)
	}
	srv.SetRequestFaults(0, 0) // the sink comes up
	// Delivery of the backlog, and of the loss reports waiting for room
	// under drop_newest, gets a deadline of its own.
	deadline = time.Now().Add(90 * time.Second)

	var seqs []int
	var lost, maxTotal map[string]uint64
	var dupes int
	sum := func() uint64 {
		var s uint64
		for _, v := range lost {
			s += v
		}
		return s
	}
	for {
		docs, d := streamDocs(srv)
		dupes = d
		seqs, lost, _ = tally(docs)
		if uint64(len(seqs))+sum() >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Anything still to come would show here.
	time.Sleep(1500 * time.Millisecond)
	docs, d := streamDocs(srv)
	dupes += d
	seqs, lost, maxTotal = tally(docs)
	if err := proc.stop(); err != nil {
		t.Fatalf("agent: %v\n%s", err, proc.log())
	}
	t.Logf("delivered %d file events, lost %v (sum %d), totals %v", len(seqs), lost, sum(), maxTotal)
	if got := uint64(len(seqs)) + sum(); got != n {
		t.Fatalf("delivered %d + lost %d = %d, want exactly %d\n%s", len(seqs), sum(), got, n, proc.log())
	}
	if dupes != 0 {
		t.Errorf("%d documents stored more than once", dupes)
	}
	if lost["spool_full"] == 0 || len(seqs) == 0 {
		t.Fatalf("the scenario did not drop anything (lost %v, delivered %d)", lost, len(seqs))
	}
	// drop_oldest delivers the newest events: a contiguous run ending at
	// the last one; drop_newest the oldest: a run starting at the first.
	contiguous := seqs[len(seqs)-1]-seqs[0]+1 == len(seqs)
	if whenFull == "drop_oldest" && (seqs[len(seqs)-1] != n || !contiguous) {
		t.Errorf("delivered event.sequence %d..%d (%d events), want the newest %d ending at %d",
			seqs[0], seqs[len(seqs)-1], len(seqs), len(seqs), n)
	}
	// Under drop_newest a smaller batch that still fits in what the first
	// refused one left can be stored later: less than one batch (64 KiB,
	// at most max_events 64) after the first run.
	if whenFull == "drop_newest" {
		first := 0
		for first < len(seqs) && seqs[first] == first+1 {
			first++
		}
		if seqs[0] != 1 || len(seqs)-first > 64 {
			t.Errorf("delivered event.sequence %d..%d (%d events), want the oldest, starting at 1, and at most one batch after them; runs %v",
				seqs[0], seqs[len(seqs)-1], len(seqs), runs(seqs))
		}
	}
	// The cumulative totals of the last report equal the counts' sum.
	for r, c := range lost {
		if maxTotal[r] != c {
			t.Errorf("fileward.lost.total.%s = %d, the counts add up to %d", r, maxTotal[r], c)
		}
	}
}

// TestCorruptSpoolIsCountedInStreamAndMetrics: events spooled while the sink
// is down, the agent stopped, one byte of a sealed segment flipped, and the
// agent started again with the sink up. The good records arrive; the
// damaged ones are counted as reason corrupt exactly, in the stream and in
// /metrics (fileward_events_dropped_total{reason="corrupt"}).
func TestCorruptSpoolIsCountedInStreamAndMetrics(t *testing.T) {
	const n = 3000
	dir := t.TempDir()
	in := filepath.Join(dir, "in.ndjson")
	ecsInput(t, in, n)
	srv := bulktest.New(13)
	defer srv.Close()
	srv.SetRequestFaults(0, 1)
	cfg := filepath.Join(dir, "c.yaml")
	empty := filepath.Join(dir, "empty.ndjson")
	os.WriteFile(empty, nil, 0o644)
	writeCfg := func(input string) {
		esReplayConfig{dataDir: filepath.Join(dir, "data"), shutdown: "1s", in: input, esURL: srv.URL, maxEvents: 64, metrics: "127.0.0.1:0",
			extra: "queue: {capacity: 65536}\nspool: {max_bytes: 64MiB, segment_bytes: 256KiB, compression: none}\n"}.write(t, cfg)
	}
	writeCfg(in)
	proc := startRun(t, cfg)
	proc.waitLog("replay reached the end of its input", 0)
	deadline := time.Now().Add(60 * time.Second)
	if err := proc.stop(); err != nil {
		t.Fatalf("agent: %v\n%s", err, proc.log())
	}
	// Flip one byte in the middle of the second segment. (compression:
	// none above: 3,000 documents make three segments only uncompressed;
	// damage to compressed records is tested in agent/spool.)
	segs, _ := filepath.Glob(filepath.Join(dir, "data", "spool", "*.seg"))
	sort.Strings(segs)
	if len(segs) < 3 {
		t.Fatalf("want at least 3 segments, got %v", segs)
	}
	b, _ := os.ReadFile(segs[1])
	b[len(b)/2] ^= 0x20
	os.WriteFile(segs[1], b, 0o600)

	srv.SetRequestFaults(0, 0)
	writeCfg(empty) // the second start captures nothing new
	proc = startRun(t, cfg)
	var seqs []int
	var lost map[string]uint64
	for time.Now().Before(deadline.Add(30 * time.Second)) {
		docs, _ := streamDocs(srv)
		seqs, lost, _ = tally(docs)
		if uint64(len(seqs))+lost["corrupt"] >= n {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	metrics := httpGet(t, proc.metricsURL())
	if err := proc.stop(); err != nil {
		t.Fatalf("agent: %v\n%s", err, proc.log())
	}
	t.Logf("delivered %d, lost %v", len(seqs), lost)
	if lost["corrupt"] == 0 || uint64(len(seqs))+lost["corrupt"] != n || len(lost) != 1 {
		t.Fatalf("delivered %d + lost %v, want corrupt losses and exactly %d in all\n%s", len(seqs), lost, n, proc.log())
	}
	want := fmt.Sprintf(`fileward_events_dropped_total{reason="corrupt"} %d`, lost["corrupt"])
	if !strings.Contains(metrics, want) {
		t.Errorf("/metrics lacks %q", want)
	}
	if !strings.Contains(proc.log(), "counted as corrupt") {
		t.Errorf("no log line about the corrupt events\n%s", proc.log())
	}
}

// metricValue reads one sample of a /metrics text page (0 when absent).
func metricValue(page, series string) float64 {
	for _, l := range strings.Split(page, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return 0
}

// TestRejectEverythingNoFeedbackLoop: a sink that rejects every document
// (400) dead-letters the events and the loss report about them, but the
// rejected report is not reported as a new loss: the rejected count equals
// the events exactly and stops growing. The dead-letter files stay within
// (keep+1) × max_bytes plus one batch, and what rotates away is counted.
func TestRejectEverythingNoFeedbackLoop(t *testing.T) {
	const n = 3000
	dir := t.TempDir()
	in := filepath.Join(dir, "in.ndjson")
	ecsInput(t, in, n)
	srv := bulktest.New(14)
	defer srv.Close()
	srv.SetPoison(func([]byte) string { return "every document is refused" })
	cfg := filepath.Join(dir, "c.yaml")
	esReplayConfig{dataDir: filepath.Join(dir, "data"), shutdown: "1s", in: in, esURL: srv.URL, maxEvents: 64, metrics: "127.0.0.1:0",
		extra: "dead_letter: {max_bytes: 256KiB, keep: 1}\n"}.write(t, cfg)
	proc := startRun(t, cfg)
	metricsURL := proc.metricsURL()
	deadline := time.Now().Add(60 * time.Second)
	const rejected = `fileward_events_dropped_total{reason="rejected"}`
	const sinkRejected = `fileward_sink_errors_total{kind="rejected",sink="es"}`
	var page string
	for time.Now().Before(deadline) {
		page = httpGet(t, metricsURL)
		// Every event dead-lettered.
		if metricValue(page, rejected) >= n {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // the last report (once a second) is rejected too
	first := metricValue(httpGet(t, metricsURL), sinkRejected)
	time.Sleep(3 * time.Second) // a feedback loop would add a report every second
	page = httpGet(t, metricsURL)
	if err := proc.stop(); err != nil {
		t.Fatalf("agent: %v\n%s", err, proc.log())
	}
	if got := metricValue(page, rejected); got != n {
		t.Errorf("%s = %v, want exactly %d (the loss reports must not count)", rejected, got, n)
	}
	reports := metricValue(page, sinkRejected) - n
	if reports < 1 || metricValue(page, sinkRejected) != first {
		t.Errorf("loss reports dead-lettered: %v, then %v more in 3 s: want at least one and no more later",
			reports, metricValue(page, sinkRejected)-first)
	}
	// Dead-letter accounting: lines kept + lines rotated away = everything.
	files, _ := filepath.Glob(filepath.Join(dir, "data", "dead-letter", "es.ndjson*"))
	var size int64
	var lines, lossLines int
	for _, f := range files {
		b, _ := os.ReadFile(f)
		size += int64(len(b))
		lines += strings.Count(string(b), "\n")
		lossLines += strings.Count(string(b), `"action":"events_lost"`)
	}
	discarded := metricValue(page, `fileward_dead_letter_discarded_events_total{sink="es"}`)
	t.Logf("dead-letter: %d files, %d bytes, %d lines (%d loss reports), %v rotated away; %v reports in all",
		len(files), size, lines, lossLines, discarded, reports)
	if len(files) > 2 || size > 2*256<<10+64<<10 {
		t.Errorf("dead-letter files %v hold %d bytes: over (keep+1) × max_bytes plus one batch", files, size)
	}
	if discarded == 0 || float64(lines)+discarded != n+reports {
		t.Errorf("dead-letter lines %d + rotated away %v != %d events + %v reports", lines, discarded, n, reports)
	}
}

// TestNewConfigKeysAreChecked: the keys this work adds are validated with
// FILE:LINE: key: reason and exit 2, by the real binary.
func TestNewConfigKeysAreChecked(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte(`sinks:
  - name: siem
    type: elasticsearch
    elasticsearch:
      addresses: ["http://127.0.0.1:9200"]
      workers: 0
dead_letter:
  max_bytes: 1KiB
  keep: -1
`), 0o644)
	out, errOut, code := fw(t, nil, "check-config", "-c", bad)
	if code != 2 || out != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	for _, w := range []string{
		bad + ":6: sinks[0].elasticsearch.workers: must be between 1 and 64",
		bad + ":8: dead_letter.max_bytes: must be at least 4KiB",
		bad + ":9: dead_letter.keep: must not be negative",
	} {
		if !strings.Contains(errOut, w) {
			t.Errorf("stderr lacks %q:\n%s", w, errOut)
		}
	}
}

// TestForgedCursorIsLoggedAndNothingSkipped: a cursor file with a valid CRC
// that points past the end of the data (segment 999, a sequence number far
// beyond) makes the next start log an ERROR and deliver the whole backlog,
// instead of silently skipping it.
func TestForgedCursorIsLoggedAndNothingSkipped(t *testing.T) {
	const n = 3000
	dir := t.TempDir()
	in := filepath.Join(dir, "in.ndjson")
	ecsInput(t, in, n)
	empty := filepath.Join(dir, "empty.ndjson")
	os.WriteFile(empty, nil, 0o644)
	srv := bulktest.New(15)
	defer srv.Close()
	srv.SetRequestFaults(0, 1)
	cfg := filepath.Join(dir, "c.yaml")
	writeCfg := func(input string) {
		esReplayConfig{dataDir: filepath.Join(dir, "data"), shutdown: "1s", in: input, esURL: srv.URL, maxEvents: 64,
			extra: "queue: {capacity: 65536}\nspool: {max_bytes: 64MiB, segment_bytes: 256KiB}\n"}.write(t, cfg)
	}
	runUntil := func(what string, done func(*testtool.SyncBuffer) bool) *testtool.SyncBuffer {
		proc := startRun(t, cfg)
		deadline := time.Now().Add(60 * time.Second)
		for !done(proc.stderr) && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if err := proc.stop(); err != nil {
			t.Fatalf("agent: %v\n%s", err, proc.log())
		}
		if !done(proc.stderr) {
			t.Fatalf("%s did not happen\n%s", what, proc.log())
		}
		return proc.stderr
	}
	writeCfg(in)
	runUntil("the replay", func(b *testtool.SyncBuffer) bool {
		return strings.Contains(b.String(), "replay reached the end of its input")
	})
	// Forge the cursor: magic, version, segment 999, offset 20, seq 2^40,
	// CRC-32C over the first 32 bytes (agent/spool/FORMAT.md).
	c := make([]byte, 36)
	copy(c, "FWCR")
	c[4] = 1
	binenc.LittleEndian.PutUint64(c[8:], 999)
	binenc.LittleEndian.PutUint64(c[16:], 20)
	binenc.LittleEndian.PutUint64(c[24:], 1<<40)
	binenc.LittleEndian.PutUint32(c[32:], crc32.Checksum(c[:32], crc32.MakeTable(crc32.Castagnoli)))
	if err := os.WriteFile(filepath.Join(dir, "data", "spool", "cursors", "es.cursor"), c, 0o600); err != nil {
		t.Fatal(err)
	}
	srv.SetRequestFaults(0, 0)
	writeCfg(empty)
	errb := runUntil("delivery of the backlog", func(*testtool.SyncBuffer) bool {
		docs, _ := streamDocs(srv)
		seqs, _, _ := tally(docs)
		return len(seqs) >= n
	})
	if !strings.Contains(errb.String(), "level=ERROR") || !strings.Contains(errb.String(), "cursor points past the end of the data") {
		t.Errorf("no ERROR line about the forged cursor\n%s", errb.String())
	}
	docs, dupes := streamDocs(srv)
	seqs, lost, _ := tally(docs)
	if len(seqs) != n || dupes != 0 || len(lost) != 0 {
		t.Errorf("delivered %d of %d (%d duplicates), lost %v", len(seqs), n, dupes, lost)
	}
}

// runs renders sorted integers as their contiguous runs, "a-b".
func runs(seqs []int) []string {
	var out []string
	for i := 0; i < len(seqs); {
		j := i
		for j+1 < len(seqs) && seqs[j+1] == seqs[j]+1 {
			j++
		}
		out = append(out, fmt.Sprintf("%d-%d", seqs[i], seqs[j]))
		i = j + 1
	}
	return out
}
