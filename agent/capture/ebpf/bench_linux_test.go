//go:build linux && (amd64 || arm64)

package ebpf

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fileward/fileward/agent/capture"
	"github.com/fileward/fileward/internal/capturebench"
	"github.com/fileward/fileward/internal/testtool"
	"github.com/fileward/fileward/schema"
	"golang.org/x/sys/unix"
)

// TestMain doubles as the benchmarks' workload and generator (children, so
// they are separate processes from the agent being measured), exactly as in
// agent/capture/fanotify: FILEWARD_WORKLOAD runs BenchmarkCaptureOverhead's
// file workload, FILEWARD_GEN_DIR BenchmarkSustainedRate's paced generator.
func TestMain(m *testing.M) {
	capturebench.Child()
	os.Exit(m.Run())
}

// consume drains ring the way pipeline.Run does, calling the source's
// Enrich on each event (as the pipeline would for an event with no
// executable), until ctx is done.
func consume(ctx context.Context, ring *capture.Ring, s *Source, consumed *atomic.Uint64) {
	var ev schema.Event
	for ring.Pop(ctx, &ev) {
		if ev.Process.Executable == "" {
			s.Enrich(&ev)
		}
		consumed.Add(1)
		n := 1
		for ; n <= 256 && ring.TryPop(&ev); n++ {
			if ev.Process.Executable == "" {
				s.Enrich(&ev)
			}
			consumed.Add(1)
		}
		if n > 1 && n <= 256 {
			time.Sleep(time.Millisecond)
		}
	}
}

// fanotifyRaw starts the fanotify source's raw-reader floor on a filesystem
// mark on mnt: a group with the fanotify source's flags and default mask whose
// reader only reads and discards (agent/capture/fanotify rawReader). Its
// slowdown is the kernel's own cost of fanotify, which no fanotify agent can
// go below.
func fanotifyRaw(mnt string) (stop func(), err error) {
	fd, err := unix.FanotifyInit(unix.FAN_CLASS_NOTIF|unix.FAN_CLOEXEC|unix.FAN_NONBLOCK|unix.FAN_REPORT_DFID_NAME, unix.O_RDONLY|unix.O_LARGEFILE|unix.O_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("fanotify_init: %w", err)
	}
	mask := uint64(unix.FAN_OPEN | unix.FAN_CLOSE_WRITE | unix.FAN_CLOSE_NOWRITE | unix.FAN_MODIFY | unix.FAN_CREATE |
		unix.FAN_DELETE | unix.FAN_RENAME | unix.FAN_ATTRIB | unix.FAN_OPEN_EXEC | unix.FAN_ONDIR)
	if err := unix.FanotifyMark(fd, unix.FAN_MARK_ADD|unix.FAN_MARK_FILESYSTEM, mask, unix.AT_FDCWD, mnt); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("fanotify_mark: %w", err)
	}
	var stopping atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 256<<10)
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for !stopping.Load() {
			n, err := unix.Read(fd, buf)
			if err != nil {
				unix.Poll(fds, 100)
				continue
			}
			if n < len(buf)/16 {
				time.Sleep(5 * time.Millisecond)
			}
		}
	}()
	return func() {
		time.Sleep(100 * time.Millisecond)
		stopping.Store(true)
		<-done
		unix.Close(fd)
	}, nil
}

// BenchmarkCaptureOverhead's eBPF configurations.
const (
	cfgBuilt    = iota // as built: path cache, wake-ups batched
	cfgBefore          // no path cache, the kernel's adaptive wake-up
	cfgAdaptive        // path cache, the kernel's adaptive wake-up
	cfgFloor           // attached, reporting only pid 1
	cfgCount
)

// BenchmarkCaptureOverhead is agent/capture/fanotify's benchmark of the same
// name, on the same workload, with the eBPF source: each iteration runs the
// workload in a child process on a tmpfs without capture, under the fanotify
// raw reader (fanotify's floor), and under the eBPF source with a consumer
// (alternating the order). It reports the slowdown against no capture and
// against the fanotify floor, the workload's CPU ratio, the agent's CPU per
// million kernel events (the events its records carry plus the repeats the kernel counted), and
// peak RSS. The eBPF source captures the whole machine: other activity on a
// shared host is captured (and costs) too.
func BenchmarkCaptureOverhead(b *testing.B) {
	needRoot(b)
	nFiles := capturebench.EnvInt("FILEWARD_BENCH_FILES", 200000)
	srcCap := capturebench.EnvInt("FILEWARD_BENCH_SRC_FILES", 20000)
	mnt := testtool.Tmpfs(b, "1g")
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
	window := time.Duration(capturebench.EnvInt("FILEWARD_BENCH_WINDOW_MS", 1000)) * time.Millisecond
	var without, raw, cpuWithout, cpuRaw []time.Duration
	var walls, cpus [cfgCount][]time.Duration
	cfgNames := [cfgCount]string{"built", "before", "cache-adaptive-wakeup", "tracepoints-only"}
	var totalEvents, totalDocs, totalLost, pcHits uint64
	var agentCPU time.Duration
	drops := &capture.Drops{}
	ring := capture.NewRing(65536, drops)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		baseline := func() {
			without = append(without, runWorkload())
			cpuWithout = append(cpuWithout, childCPU)
		}
		rawRun := func() {
			stop, err := fanotifyRaw(mnt)
			if err != nil {
				b.Fatal(err)
			}
			raw = append(raw, runWorkload())
			cpuRaw = append(cpuRaw, childCPU)
			stop()
		}
		if i%2 == 0 {
			baseline()
			rawRun()
		}
		// runEBPF runs the workload under the eBPF source and a consumer;
		// noCache turns the kernel's path cache off (compared in the same
		// run).
		// The eBPF source in four configurations, in the same run: as
		// built (path cache, batched wake-ups); "before" (no path cache,
		// the kernel's adaptive wake-up: one per record when the reader
		// keeps up); the path cache with adaptive wake-ups; and the
		// programs attached but reporting only pid 1 (init, idle here):
		// what the tracepoints cost before any record is made (syscall
		// tracing for every syscall, the descriptor lookup of every write
		// and close).
		type result struct {
			wall, cpu time.Duration
			st        Stats
			lost      uint64
		}
		runEBPF := func(c int) result {
			o := Options{SelfPID: os.Getpid(), AggregateWindow: window}
			switch c {
			case cfgBefore:
				o.noPathCache, o.adaptiveWakeup = true, true
			case cfgAdaptive:
				o.adaptiveWakeup = true
			case cfgFloor:
				o.targetPID = 1
			}
			s, err := New(o)
			if err != nil {
				b.Fatal(err)
			}
			lost0 := drops.Load(schema.LossEBPFRingbufFull) + drops.Load(schema.LossEBPFMapFull) + drops.Load(schema.LossRingFull)
			ctx, cancel := context.WithCancel(context.Background())
			var consumed atomic.Uint64
			var wg sync.WaitGroup
			wg.Add(2)
			runErr := make(chan error, 1)
			go func() { defer wg.Done(); runErr <- s.Run(ctx, ring, drops) }()
			go func() { defer wg.Done(); consume(ctx, ring, s, &consumed) }()
			cpu0 := capturebench.CPUTime()
			d := runWorkload()
			for last := uint64(0); ; {
				time.Sleep(50 * time.Millisecond)
				c := consumed.Load()
				if c == last && ring.Len() == 0 {
					break
				}
				last = c
			}
			cancel()
			wg.Wait()
			if c == cfgBuilt {
				agentCPU += capturebench.CPUTime() - cpu0
			}
			if err := <-runErr; err != nil {
				b.Fatal(err)
			}
			lost := drops.Load(schema.LossEBPFRingbufFull) + drops.Load(schema.LossEBPFMapFull) + drops.Load(schema.LossRingFull) - lost0
			return result{d, childCPU, s.Stats(), lost}
		}
		var res [cfgCount]result
		order := []int{cfgBuilt, cfgBefore, cfgAdaptive, cfgFloor}
		if i%2 == 1 {
			slices.Reverse(order)
		}
		for _, c := range order {
			res[c] = runEBPF(c)
			walls[c] = append(walls[c], res[c].wall)
			cpus[c] = append(cpus[c], res[c].cpu)
		}
		if i%2 == 1 {
			rawRun()
			baseline()
		}
		st := res[cfgBuilt].st
		kernelEvents := st.KernelEvents()
		totalEvents += kernelEvents
		totalDocs += st.Events
		totalLost += res[cfgBuilt].lost
		pcHits += st.PathCacheHits
		var line strings.Builder
		for c, name := range cfgNames {
			fmt.Fprintf(&line, "; %s: wall %v (%.3fx), workload CPU %v (%.3fx), %d kernel events, lost %d", name,
				res[c].wall.Round(time.Millisecond), float64(res[c].wall)/float64(without[i]),
				res[c].cpu.Round(time.Millisecond), float64(res[c].cpu)/float64(cpuWithout[i]),
				res[c].st.KernelEvents(), res[c].lost)
		}
		b.Logf("pair %d: without: wall %v, workload CPU %v; fanotify raw: wall %v (%.3fx), workload CPU %v (%.3fx)%s; built: %d records, %d documents (%d repeats counted in the kernel, %d events not aggregated: map full), %d path cache hits",
			i, without[i].Round(time.Millisecond), cpuWithout[i].Round(time.Millisecond),
			raw[i].Round(time.Millisecond), float64(raw[i])/float64(without[i]), cpuRaw[i].Round(time.Millisecond), float64(cpuRaw[i])/float64(cpuWithout[i]),
			line.String(), st.Records, st.Events, st.Aggregated, st.Unaggregated, st.PathCacheHits)
	}
	b.StopTimer()
	sum := func(ds []time.Duration) (t time.Duration) {
		for _, d := range ds {
			t += d
		}
		return t
	}
	with, cpuWith := walls[cfgBuilt], cpus[cfgBuilt]
	b.ReportMetric(float64(sum(with))/float64(sum(without)), "slowdown")
	b.ReportMetric(float64(sum(raw))/float64(sum(without)), "fanotify-raw-slowdown")
	b.ReportMetric(float64(sum(with))/float64(sum(raw)), "ebpf-vs-fanotify-raw")
	b.ReportMetric(float64(sum(cpuWith))/float64(sum(cpuWithout)), "workload-cpu-ratio")
	b.ReportMetric(float64(sum(cpuRaw))/float64(sum(cpuWithout)), "fanotify-raw-workload-cpu-ratio")
	for c, name := range cfgNames[1:] {
		b.ReportMetric(float64(sum(walls[c+1]))/float64(sum(without)), "slowdown-"+name)
		b.ReportMetric(float64(sum(cpus[c+1]))/float64(sum(cpuWithout)), "workload-cpu-ratio-"+name)
	}
	b.ReportMetric(float64(pcHits), "path-cache-hits")
	b.ReportMetric(agentCPU.Seconds()/(float64(totalEvents)/1e6), "agent-cpu-s/1M-events")
	b.ReportMetric(float64(totalEvents), "kernel-events")
	b.ReportMetric(float64(totalDocs), "documents")
	b.ReportMetric(float64(totalLost), "lost")
	b.ReportMetric(float64(capturebench.PeakRSS())/(1<<20), "peak-RSS-MiB")
	b.Logf("workload: %d files ×(create+write, read, rename, delete) + read of %d source files on tmpfs", nFiles, copied)
}

// BenchmarkSustainedRate is agent/capture/fanotify's search for the highest
// lossless rate, with the eBPF source: two paced children open and close
// distinct files (round-robin over 10,000 each) at a rate that doubles, then
// grows by a quarter, until the kernel reports ebpf_ringbuf_full or the ring
// fills, or the generators cannot reach the rate. The rate is the
// generators' events (an open and a close per open(2)), whether they arrived
// as records or as repeats counted in the kernel (window
// FILEWARD_BENCH_WINDOW_MS, default 1000, as the agent's default
// aggregate_window); the kernel events of the whole machine are logged too.
func BenchmarkSustainedRate(b *testing.B) {
	needRoot(b)
	stepMS := capturebench.EnvInt("FILEWARD_BENCH_STEP_MS", 3000)
	window := time.Duration(capturebench.EnvInt("FILEWARD_BENCH_WINDOW_MS", 1000)) * time.Millisecond
	mnt := testtool.Tmpfs(b, "1g")
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
		s, err := New(Options{SelfPID: os.Getpid(), AggregateWindow: window})
		if err != nil {
			b.Fatal(err)
		}
		drops := &capture.Drops{}
		ring := capture.NewRing(65536, drops)
		ctx, cancel := context.WithCancel(context.Background())
		var consumed atomic.Uint64
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); s.Run(ctx, ring, drops) }()
		go func() { defer wg.Done(); consume(ctx, ring, s, &consumed) }()
		best, firstLoss := 0.0, 0.0
		var bestCPU float64
		for rate := 25000; ; {
			lost0 := drops.Load(schema.LossEBPFRingbufFull) + drops.Load(schema.LossRingFull) + drops.Load(schema.LossEBPFMapFull)
			st0, c0 := s.Stats(), capturebench.CPUTime()
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
			for last := uint64(0); ; {
				time.Sleep(100 * time.Millisecond)
				c := consumed.Load()
				if c == last && ring.Len() == 0 {
					break
				}
				last = c
			}
			st := s.Stats()
			evs := st.KernelEvents() - st0.KernelEvents()
			cpu := capturebench.CPUTime() - c0
			lost := drops.Load(schema.LossEBPFRingbufFull) + drops.Load(schema.LossRingFull) + drops.Load(schema.LossEBPFMapFull) - lost0
			// The rate judged is the generators' own (an open and a close per
			// open(2)): the kernel also sees, and the agent also carries,
			// every other process on the machine, so losses are anybody's.
			got := 2 * float64(opens) / wall.Seconds()
			asked := 2 * float64(rate)
			reached := float64(opens) >= 0.95*float64(rate)*float64(stepMS)/1000
			b.Logf("asked %.0f events/s: generators made %d opens (%v), %.0f events/s; the kernel saw %d events on the machine (%d records, %d repeats counted), %.2f agent CPU-s/1M kernel events; lost %d",
				asked, opens, wall.Round(time.Millisecond), got, evs, st.Records-st0.Records, st.Aggregated-st0.Aggregated, cpu.Seconds()/(float64(evs)/1e6), lost)
			if lost > 0 {
				firstLoss = got
				break
			}
			if got > best {
				best, bestCPU = got, cpu.Seconds()/(float64(evs)/1e6)
			}
			if !reached {
				b.Logf("the generators cannot make more than %.0f events/s on this machine; no loss up to here", got)
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
		b.ReportMetric(best, "lossless-events/s")
		b.ReportMetric(bestCPU, "agent-cpu-s/1M-events")
		b.ReportMetric(firstLoss, "first-loss-events/s")
		b.ReportMetric(float64(capturebench.PeakRSS())/(1<<20), "peak-RSS-MiB")
	}
}
