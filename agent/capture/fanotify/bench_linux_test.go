//go:build linux

package fanotify

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fileward/fileward/agent/capture"
	"github.com/fileward/fileward/agent/procfs"
	"github.com/fileward/fileward/internal/capturebench"
	"github.com/fileward/fileward/internal/testtool"
	"github.com/fileward/fileward/schema"
	"golang.org/x/sys/unix"
)

// TestMain doubles as the benchmark's workload: with FILEWARD_WORKLOAD set,
// the test binary runs the file workload in that directory and exits, so the
// workload is a separate process from the agent being measured. With
// FILEWARD_GEN_DIR it is BenchmarkSustainedRate's generator, and with
// FILEWARD_TRY_NEW TestNotRoot's unprivileged child.
func TestMain(m *testing.M) {
	if dir := os.Getenv("FILEWARD_TRY_NEW"); dir != "" {
		tryNew(dir)
	}
	capturebench.Child()
	os.Exit(m.Run())
}

// BenchmarkCaptureOverhead runs a file-heavy workload in a child process on
// a tmpfs, alternating without and with a Source capturing that filesystem
// (a consumer drains the ring and calls procfs Enrich on every event, as the
// pipeline would). Each iteration is one pair. It reports the workload's
// slowdown, the agent's CPU seconds per million events (this process's
// getrusage delta: it runs only the source and the consumer), events per
// second, kernel_overflow and ring_full losses, and the peak RSS.
//
// FILEWARD_BENCH_FILES (default 200000) and FILEWARD_BENCH_SRC_FILES
// (default 20000, copied from $GOROOT/src) size the workload;
// FILEWARD_BENCH_EVENTS adds events (e.g. "access"), FILEWARD_BENCH_EVENTS_ONLY
// replaces the list; FILEWARD_BENCH_CHILDFID=1
// turns on the objects' own file handles (FAN_REPORT_FID) for comparison.
func BenchmarkCaptureOverhead(b *testing.B) {
	needRoot(b)
	nFiles := capturebench.EnvInt("FILEWARD_BENCH_FILES", 200000)
	srcCap := capturebench.EnvInt("FILEWARD_BENCH_SRC_FILES", 20000)
	events := []string{"open", "close", "create", "modify", "rename", "delete", "attrib", "exec"}
	if extra := os.Getenv("FILEWARD_BENCH_EVENTS"); extra != "" {
		events = append(events, strings.Split(extra, ",")...)
	}
	if only := os.Getenv("FILEWARD_BENCH_EVENTS_ONLY"); only != "" {
		events = strings.Split(only, ",")
	}
	mnt := benchFS(b)
	src := filepath.Join(mnt, "src")
	copied, err := capturebench.CopySource(src, srcCap)
	if err != nil {
		b.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	run := 0
	var childCPU time.Duration
	runWorkload := func() time.Duration {
		run++
		d, cpu, err := capturebench.RunWorkload(self, filepath.Join(mnt, fmt.Sprintf("run%d", run)), src, nFiles)
		if err != nil {
			b.Fatal(err)
		}
		childCPU = cpu
		return d
	}
	var without, with, raw, cpuWithout, cpuWith []time.Duration
	var totalEvents, totalOverflow, totalRingFull uint64
	var agentCPU time.Duration
	drops := &capture.Drops{}
	ring := capture.NewRing(65536, drops)
	pc := procfs.New(procfs.Options{HostID: "bench"})
	var withTime time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Alternate which run of the pair goes first, so that drift in a
		// shared machine's load does not favour one side.
		baseline := func() {
			without = append(without, runWorkload())
			cpuWithout = append(cpuWithout, childCPU)
		}
		// The raw reader: a fanotify group with the agent's flags and mask
		// whose reader only reads and discards. Its slowdown is the kernel's
		// own cost of making and queueing the events, which no fanotify
		// agent can avoid; the agent's extra over it is ours.
		rawRun := func() {
			stop, err := rawReader(mnt, events)
			if err != nil {
				b.Fatal(err)
			}
			raw = append(raw, runWorkload())
			stop()
		}
		if i%2 == 0 {
			baseline()
			rawRun()
		}

		s, err := New(Options{Marks: []string{mnt}, Events: events, childFID: os.Getenv("FILEWARD_BENCH_CHILDFID") != ""})
		if err != nil {
			b.Fatal(err)
		}
		// One ring and one process cache for the whole benchmark, as in
		// the agent; losses are taken as deltas per pair.
		of0, rf0 := drops.Load(schema.LossKernelOverflow), drops.Load(schema.LossRingFull)
		ctx, cancel := context.WithCancel(context.Background())
		var consumed atomic.Uint64
		var wg sync.WaitGroup
		wg.Add(2)
		runErr := make(chan error, 1)
		go func() { defer wg.Done(); runErr <- s.Run(ctx, ring, drops) }()
		go func() { defer wg.Done(); consume(ctx, ring, pc, &consumed) }()
		cpu0 := capturebench.CPUTime()
		d := runWorkload()
		// Let the source and consumer finish the backlog.
		for last := uint64(0); ; {
			time.Sleep(50 * time.Millisecond)
			c := consumed.Load()
			if c == last && ring.Len() == 0 {
				break
			}
			last = c
		}
		agentCPU += capturebench.CPUTime() - cpu0
		cancel()
		wg.Wait()
		if err := <-runErr; err != nil {
			b.Fatal(err)
		}
		with = append(with, d)
		cpuWith = append(cpuWith, childCPU)
		if i%2 == 1 {
			rawRun()
			baseline()
		}
		withTime += d
		st := s.Stats()
		totalEvents += st.Events
		of, rf := drops.Load(schema.LossKernelOverflow)-of0, drops.Load(schema.LossRingFull)-rf0
		totalOverflow += of
		totalRingFull += rf
		b.Logf("pair %d: wall without %v, raw reader %v (%.3fx), with %v (%.3fx); workload CPU without %v, with %v (%.3fx); %d reads, %d records → %d events, kernel_overflow %d, ring_full %d, unresolved %d",
			i, without[i].Round(time.Millisecond), raw[i].Round(time.Millisecond), float64(raw[i])/float64(without[i]), d.Round(time.Millisecond), float64(d)/float64(without[i]),
			cpuWithout[i].Round(time.Millisecond), cpuWith[i].Round(time.Millisecond), float64(cpuWith[i])/float64(cpuWithout[i]),
			st.Reads, st.Records, st.Events, of, rf, st.Unresolved)
	}
	b.StopTimer()
	pc.Close()
	med := func(ds []time.Duration) time.Duration {
		s := append([]time.Duration(nil), ds...)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		return s[len(s)/2]
	}
	sum := func(ds []time.Duration) (t time.Duration) {
		for _, d := range ds {
			t += d
		}
		return t
	}
	// Ratios of totals over all pairs.
	b.ReportMetric(float64(sum(with))/float64(sum(without)), "slowdown")
	b.ReportMetric(float64(sum(raw))/float64(sum(without)), "raw-reader-slowdown")
	b.ReportMetric(float64(sum(with))/float64(sum(raw)), "agent-vs-raw")
	b.ReportMetric(float64(sum(cpuWith))/float64(sum(cpuWithout)), "workload-cpu-ratio")
	b.ReportMetric(agentCPU.Seconds()/(float64(totalEvents)/1e6), "agent-cpu-s/1M-events")
	b.ReportMetric(float64(totalEvents)/withTime.Seconds(), "events/s")
	b.ReportMetric(float64(totalOverflow), "kernel_overflow")
	b.ReportMetric(float64(totalRingFull), "ring_full")
	b.ReportMetric(float64(capturebench.PeakRSS())/(1<<20), "peak-RSS-MiB")
	b.Logf("workload on %s: %d files ×(create+write, read, rename, delete) + walk/read of %d source files; median without %v, raw reader %v, with %v",
		benchFSType(), nFiles, copied, med(without).Round(time.Millisecond), med(raw).Round(time.Millisecond), med(with).Round(time.Millisecond))
}

// BenchmarkDrainRate measures the agent's own capacity, apart from how fast
// a workload can make events: a child process creates, reads, renames and
// deletes FILEWARD_BENCH_FILES files (default 100000) while the source is
// created but not yet read (queue: unlimited, so nothing is lost), then the
// source and a consumer calling procfs Enrich drain the backlog. It reports
// events/s drained and the agent's CPU seconds per million events.
func BenchmarkDrainRate(b *testing.B) {
	needRoot(b)
	nFiles := capturebench.EnvInt("FILEWARD_BENCH_FILES", 100000)
	mnt := testtool.Tmpfs(b, "4g")
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	var totalEvents uint64
	var totalTime, totalCPU time.Duration
	for i := 0; i < b.N; i++ {
		s, err := New(Options{Marks: []string{mnt}, Queue: "unlimited"})
		if err != nil {
			b.Fatal(err)
		}
		dir := filepath.Join(mnt, fmt.Sprintf("run%d", i))
		cmd := exec.Command(self)
		cmd.Env = append(os.Environ(), "FILEWARD_WORKLOAD="+dir, "FILEWARD_WORKLOAD_FILES="+strconv.Itoa(nFiles))
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			b.Fatal(err)
		}
		drops := &capture.Drops{}
		ring := capture.NewRing(65536, drops)
		pc := procfs.New(procfs.Options{HostID: "bench"})
		ctx, cancel := context.WithCancel(context.Background())
		var consumed atomic.Uint64
		var lastAt atomic.Int64
		var wg sync.WaitGroup
		wg.Add(2)
		cpu0 := capturebench.CPUTime()
		t0 := time.Now()
		go func() { defer wg.Done(); s.Run(ctx, ring, drops) }()
		go func() {
			defer wg.Done()
			var ev schema.Event
			enrich := os.Getenv("FILEWARD_BENCH_NOENRICH") == ""
			for ring.Pop(ctx, &ev) {
				if enrich {
					pc.Enrich(&ev)
				}
				consumed.Add(1)
				lastAt.Store(time.Now().UnixNano())
			}
		}()
		// Done when neither the source nor the consumer moved for 300ms.
		for last, lastReads := uint64(0), uint64(0); ; {
			time.Sleep(300 * time.Millisecond)
			c, rd := consumed.Load(), s.Stats().Reads
			if c == last && rd == lastReads && c > 0 {
				break
			}
			last, lastReads = c, rd
		}
		cpu := capturebench.CPUTime() - cpu0
		cancel()
		wg.Wait()
		pc.Close()
		d := time.Duration(lastAt.Load() - t0.UnixNano())
		st := s.Stats()
		b.Logf("drained %d records → %d events in %v (%.0f events/s), agent CPU %v; ring_full %d, kernel_overflow %d",
			st.Records, consumed.Load(), d.Round(time.Millisecond), float64(consumed.Load())/d.Seconds(), cpu.Round(time.Millisecond),
			drops.Load(schema.LossRingFull), drops.Load(schema.LossKernelOverflow))
		totalEvents += consumed.Load()
		totalTime += d
		totalCPU += cpu
		os.RemoveAll(dir)
	}
	b.ReportMetric(float64(totalEvents)/totalTime.Seconds(), "events/s")
	b.ReportMetric(totalCPU.Seconds()/(float64(totalEvents)/1e6), "agent-cpu-s/1M-events")
	b.ReportMetric(float64(capturebench.PeakRSS())/(1<<20), "peak-RSS-MiB")
}

func benchFSType() string {
	if os.Getenv("FILEWARD_BENCH_FS") == "ext4" {
		return "ext4"
	}
	return "tmpfs"
}

// benchFS gives the benchmark its own filesystem: a tmpfs by default (the
// cheapest syscalls, so the largest relative overhead), or with
// FILEWARD_BENCH_FS=ext4 an ext4 image on a loop device backed by the
// test's temporary directory, as a disk-backed host would have.
func benchFS(b *testing.B) string {
	if benchFSType() != "ext4" {
		return testtool.Tmpfs(b, "4g")
	}
	dir := b.TempDir()
	img := filepath.Join(dir, "fs.img")
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		b.Fatal(err)
	}
	if out, err := exec.Command("truncate", "-s", "4G", img).CombinedOutput(); err != nil {
		b.Fatalf("truncate: %v: %s", err, out)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", img).CombinedOutput(); err != nil {
		b.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		b.Fatalf("mount -o loop: %v: %s", err, out)
	}
	b.Cleanup(func() { exec.Command("umount", "-d", mnt).Run() })
	return mnt
}

// rawReader starts a fanotify group with the agent's flags and mask on a
// filesystem mark on mnt, and a goroutine that reads it the way the agent
// does (poll(2) when empty, the same pause after a small read) into a large
// buffer and discards what it reads. stop ends it and closes the group.
func rawReader(mnt string, events []string) (stop func(), err error) {
	ev, _ := parseEvents(events)
	fd, err := unix.FanotifyInit(unix.FAN_CLASS_NOTIF|unix.FAN_CLOEXEC|unix.FAN_NONBLOCK|unix.FAN_REPORT_DFID_NAME, unix.O_RDONLY|unix.O_LARGEFILE|unix.O_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("fanotify_init: %w", err)
	}
	if err := unix.FanotifyMark(fd, unix.FAN_MARK_ADD|unix.FAN_MARK_FILESYSTEM, ev.kernelMask(false), unix.AT_FDCWD, mnt); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("fanotify_mark: %w", err)
	}
	var stopping atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, defaultReadBuffer)
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for !stopping.Load() {
			n, err := unix.Read(fd, buf)
			if err != nil {
				unix.Poll(fds, 100)
				continue
			}
			if n < len(buf)/16 {
				time.Sleep(defaultBatchDelay)
			}
		}
	}()
	return func() {
		time.Sleep(100 * time.Millisecond) // drain what is queued
		stopping.Store(true)
		<-done
		unix.Close(fd)
	}, nil
}

// BenchmarkSustainedRate searches for the highest event rate the agent
// sustains with zero kernel_overflow on the default kernel queue (16384
// events). One source and a consumer that calls procfs Enrich on every
// event (as the pipeline would) run for the whole search; two paced child
// processes open and close distinct files at a rate that doubles, then
// grows by a quarter, step by step (FILEWARD_BENCH_STEP_MS long, default
// 3000), until the kernel overflows, the ring fills, or the generators can no
// longer reach the rate asked of it on this machine. It reports the highest
// rate with no loss (events/s) and the first rate with loss, if one was
// reached.
func BenchmarkSustainedRate(b *testing.B) {
	needRoot(b)
	stepMS := capturebench.EnvInt("FILEWARD_BENCH_STEP_MS", 3000)
	mnt := benchFS(b)
	const nFiles = 10000
	dirs := []string{filepath.Join(mnt, "gen0"), filepath.Join(mnt, "gen1")}
	for _, dir := range dirs {
		if err := os.Mkdir(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		for i := 0; i < nFiles; i++ {
			if err := os.WriteFile(filepath.Join(dir, "f"+strconv.Itoa(i)), []byte("x"), 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		s, err := New(Options{Marks: []string{mnt}, Events: []string{"open", "close", "create", "modify", "rename", "delete", "attrib", "exec"}})
		if err != nil {
			b.Fatal(err)
		}
		drops := &capture.Drops{}
		ring := capture.NewRing(65536, drops)
		pc := procfs.New(procfs.Options{HostID: "bench"})
		ctx, cancel := context.WithCancel(context.Background())
		var consumed atomic.Uint64
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); s.Run(ctx, ring, drops) }()
		go func() { defer wg.Done(); consume(ctx, ring, pc, &consumed) }()
		best, firstLoss := 0.0, 0.0
		var bestCPU float64
		for rate := 25000; ; {
			of0, rf0 := drops.Load(schema.LossKernelOverflow), drops.Load(schema.LossRingFull)
			ev0, c0 := s.Stats().Events, capturebench.CPUTime()
			// Two generators, each at half the rate, so that the rate is not
			// capped by one core's syscall speed.
			var outs [2][]byte
			var errs [2]error
			var gw sync.WaitGroup
			t0 := time.Now()
			for g := range outs {
				gw.Add(1)
				go func() {
					defer gw.Done()
					cmd := exec.Command(self)
					cmd.Env = append(os.Environ(), "FILEWARD_GEN_DIR="+dirs[g], "FILEWARD_GEN_FILES="+strconv.Itoa(nFiles),
						"FILEWARD_GEN_RATE="+strconv.Itoa(rate/2), "FILEWARD_GEN_MILLIS="+strconv.Itoa(stepMS))
					cmd.Stderr = os.Stderr
					outs[g], errs[g] = cmd.Output()
				}()
			}
			gw.Wait()
			opens := 0
			for g := range outs {
				if errs[g] != nil {
					b.Fatalf("generator: %v", errs[g])
				}
				n, _ := strconv.Atoi(strings.TrimSpace(string(outs[g])))
				opens += n
			}
			wall := time.Since(t0)
			// Let the agent catch up before judging the step.
			for last := uint64(0); ; {
				time.Sleep(100 * time.Millisecond)
				c := consumed.Load()
				if c == last && ring.Len() == 0 {
					break
				}
				last = c
			}
			evs := s.Stats().Events - ev0
			cpu := capturebench.CPUTime() - c0
			of, rf := drops.Load(schema.LossKernelOverflow)-of0, drops.Load(schema.LossRingFull)-rf0
			got := float64(evs) / wall.Seconds()
			asked := 2 * float64(rate)
			reached := float64(opens) >= 0.95*float64(rate)*float64(stepMS)/1000
			// Fewer events than opens and closes without a loss count means
			// the kernel merged an event into an identical one still queued
			// (same file, same process, same mask): not a loss it reports.
			b.Logf("asked %.0f events/s: generators made %d opens (%v), agent got %d events = %.0f events/s (%d merged by the kernel), %.2f agent CPU-s/1M events; kernel_overflow %d, ring_full %d",
				asked, opens, wall.Round(time.Millisecond), evs, got, 2*int64(opens)-int64(evs), cpu.Seconds()/(float64(evs)/1e6), of, rf)
			if of > 0 || rf > 0 {
				firstLoss = got
				break
			}
			if got > best {
				best, bestCPU = got, cpu.Seconds()/(float64(evs)/1e6)
			}
			if !reached {
				b.Logf("the generator cannot make more than %.0f events/s on this machine; no loss up to here", got)
				break
			}
			if rate < 200000 {
				rate *= 2
			} else {
				rate += rate / 4
			}
		}
		cancel()
		wg.Wait()
		pc.Close()
		b.ReportMetric(best, "lossless-events/s")
		b.ReportMetric(bestCPU, "agent-cpu-s/1M-events")
		b.ReportMetric(firstLoss, "first-loss-events/s")
		b.ReportMetric(float64(capturebench.PeakRSS())/(1<<20), "peak-RSS-MiB")
	}
}

// consume drains ring the way pipeline.Run does (wait for one event, take
// up to 256 more without waiting, and pause 1 ms after a burst that emptied
// the ring), calling procfs Enrich on each and counting them, until ctx is
// done.
func consume(ctx context.Context, ring *capture.Ring, pc *procfs.Cache, consumed *atomic.Uint64) {
	var ev schema.Event
	for ring.Pop(ctx, &ev) {
		pc.Enrich(&ev)
		consumed.Add(1)
		n := 1
		for ; n <= 256 && ring.TryPop(&ev); n++ {
			pc.Enrich(&ev)
			consumed.Add(1)
		}
		if n > 1 && n <= 256 {
			time.Sleep(time.Millisecond)
		}
	}
}
