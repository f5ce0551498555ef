package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
)

// rowCaptureEBPF is the capture row's workload and rate search with the eBPF
// source (agent/capture/ebpf's BenchmarkCaptureOverhead and
// BenchmarkSustainedRate): the workload's slowdown against no capture and
// against the fanotify raw-reader floor measured in the same run, the agent's
// CPU per million kernel events, the highest lossless rate, and peak RSS.
func (h *harness) rowCaptureEBPF(ctx context.Context) ([]Result, error) {
	if os.Geteuid() != 0 {
		return []Result{{Name: "capture_ebpf.slowdown", Skipped: "needs root (BPF programs)"}}, nil
	}
	files, pairs, srcFiles := envOr("FWBENCH_CAPTURE_FILES", 100000), envOr("FWBENCH_CAPTURE_PAIRS", 3), envOr("FWBENCH_CAPTURE_SRC_FILES", 20000)
	stepMS := 3000
	if h.smoke {
		files, pairs, srcFiles, stepMS = 1000, 1, 100, 300
	}
	env := []string{"FILEWARD_BENCH_FILES=" + strconv.Itoa(files), "FILEWARD_BENCH_SRC_FILES=" + strconv.Itoa(srcFiles)}
	bl, err := h.goBench(ctx, `^BenchmarkCaptureOverhead$`, fmt.Sprintf("%dx", pairs), 1, env, "./agent/capture/ebpf")
	if err != nil {
		return nil, err
	}
	b, ok := bl["BenchmarkCaptureOverhead"]
	if !ok {
		return nil, fmt.Errorf("ebpf BenchmarkCaptureOverhead missing from the output (have %v)", keys(bl))
	}
	m := b.Metrics
	note := fmt.Sprintf("%d sets; the capture row's workload (%d files ×(create+write, read, rename, delete) + read of %d source files on tmpfs); eBPF source (system-wide, aggregate window 1s) + ring + consumer in the benchmark process; baseline: fanotify raw reader on the same tmpfs, same run", pairs, files, srcFiles)
	slow := Result{Name: "capture_ebpf.tmpfs.slowdown", Value: m["slowdown"], Unit: "x wall (with/without)",
		Baseline: m["fanotify-raw-slowdown"], BaselineUnit: "x wall, fanotify raw reader (fanotify's floor)",
		Ratio: m["ebpf-vs-fanotify-raw"], RatioMeans: "workload wall time with eBPF capture / with the fanotify raw reader", Notes: note}
	slow.apply(Target{"value", "<=", 1.10})
	wcpu := Result{Name: "capture_ebpf.tmpfs.workload_cpu_ratio", Value: m["workload-cpu-ratio"], Unit: "x CPU (with/without)"}
	cpu := Result{Name: "capture_ebpf.tmpfs.agent_cpu_s_per_1M", Value: m["agent-cpu-s/1M-events"], Unit: "CPU-s/1M kernel events",
		Notes: "kernel events = records + repeats the kernel counted"}
	rss := Result{Name: "capture_ebpf.tmpfs.peak_rss", Value: m["peak-RSS-MiB"], Unit: "MiB", Notes: "VmHWM of the benchmark process"}
	rss.apply(Target{"value", "<=", 100})
	lost := Result{Name: "capture_ebpf.tmpfs.lost", Value: m["lost"], Unit: "events (ebpf_ringbuf_full + ebpf_map_full + ring_full)"}
	floor := Result{Name: "capture_ebpf.tmpfs.vs_fanotify_floor", Value: m["ebpf-vs-fanotify-raw"], Unit: "x wall (eBPF capture / fanotify raw reader)",
		Notes: "below 1: the eBPF agent costs the workload less than fanotify's kernel cost alone"}
	floor.apply(Target{"value", "<=", 1.0})
	out := []Result{slow, floor, wcpu, cpu, rss, lost}

	bl, err = h.goBench(ctx, `^BenchmarkSustainedRate$`, "1x", 1, []string{"FILEWARD_BENCH_STEP_MS=" + strconv.Itoa(stepMS)}, "./agent/capture/ebpf")
	if err != nil {
		return nil, err
	}
	b, ok = bl["BenchmarkSustainedRate"]
	if !ok {
		return nil, fmt.Errorf("ebpf BenchmarkSustainedRate missing from the output (have %v)", keys(bl))
	}
	m = b.Metrics
	rnote := "the highest rate of the generators' events (an open and a close per open(2)) with no ebpf_ringbuf_full, ebpf_map_full or ring_full on the whole machine; "
	if m["first-loss-events/s"] > 0 {
		rnote += fmt.Sprintf("the first loss came at %.0f events/s", m["first-loss-events/s"])
	} else {
		rnote += "no loss was reached: the generators (two child processes opening and closing files) could go no faster on this machine"
	}
	rate := Result{Name: "capture_ebpf.events_per_s_lossless", Value: m["lossless-events/s"], Unit: "events/s", Notes: rnote}
	if !h.smoke {
		rate.apply(Target{"value", ">=", 400000})
	}
	scpu := Result{Name: "capture_ebpf.sustained_agent_cpu_s_per_1M", Value: m["agent-cpu-s/1M-events"], Unit: "CPU-s/1M events", Notes: "at the highest lossless rate"}
	return append(out, rate, scpu), nil
}
