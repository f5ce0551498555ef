package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
)

// rowEncode reuses schema's BenchmarkEncode and BenchmarkEncodeEncodingJSON:
// the same full document, ours appended into a reused buffer, the baseline
// json.Marshal of the prebuilt struct (the conservative baseline: building
// the struct is not timed).
func (h *harness) rowEncode(ctx context.Context) ([]Result, error) {
	bt := "2s"
	if h.smoke {
		bt = "100ms"
	}
	bl, err := h.goBench(ctx, `^BenchmarkEncode(EncodingJSON)?$`, bt, 1, nil, "./schema")
	if err != nil {
		return nil, err
	}
	ours, ok1 := bl["BenchmarkEncode"]
	base, ok2 := bl["BenchmarkEncodeEncodingJSON"]
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("schema benchmarks missing from the output (have %v)", keys(bl))
	}
	r := Result{Name: "encode.ns_per_event", Value: ours.Metrics["ns/op"], Unit: "ns/event",
		Baseline: base.Metrics["ns/op"], BaselineUnit: "ns/event", BaselineName: "encoding/json Marshal of the same document",
		RatioMeans: "baseline ns / our ns (times faster)"}
	r.Ratio = r.Baseline / r.Value
	r.apply(Target{"ratio", ">=", 5})
	a := Result{Name: "encode.allocs_per_event", Value: ours.Metrics["allocs/op"], Unit: "allocs/event",
		Baseline: base.Metrics["allocs/op"], BaselineUnit: "allocs/event", BaselineName: "encoding/json"}
	a.apply(Target{"value", "<=", 0})
	return []Result{r, a}, nil
}

// rowSpool reuses agent/spool's BenchmarkSpoolAppend and BenchmarkPlainWrite:
// the same bytes in the same sizes to the same disk (the package's temp
// dir: TMPDIR is pointed at the work directory), fsync every second in both.
// The figure is the 1 MiB record size, the pipeline's batch.max_bytes.
func (h *harness) rowSpool(ctx context.Context) ([]Result, error) {
	bt := "1s"
	if h.smoke {
		bt = "50ms"
	}
	tmp := h.work + "/gotest-tmp"
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return nil, err
	}
	count := 3
	if h.smoke {
		count = 1
	}
	bl, err := h.goBench(ctx, `^Benchmark(SpoolAppend|PlainWrite)$`, bt, count, []string{"TMPDIR=" + tmp}, "./agent/spool")
	if err != nil {
		return nil, err
	}
	var out []Result
	for _, size := range []string{"1024KiB", "256KiB", "64KiB"} {
		ours, ok1 := bl["BenchmarkSpoolAppend/"+size]
		base, ok2 := bl["BenchmarkPlainWrite/"+size]
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("spool benchmarks for %s missing from the output (have %v)", size, keys(bl))
		}
		r := Result{Name: "spool.append_" + size, Value: ours.Metrics["MB/s"], Unit: "MB/s",
			Baseline: base.Metrics["MB/s"], BaselineUnit: "MB/s", BaselineName: "sequential write + fsync every 1s",
			RatioMeans: "ours / baseline", Notes: fmt.Sprintf("median MB/s of %d runs each (go test -count)", ours.N)}
		r.Ratio = r.Value / r.Baseline
		if size == "1024KiB" {
			r.apply(Target{"ratio", ">=", 0.7})
		} else {
			r.Notes += "; record size below batch.max_bytes; informational"
		}
		out = append(out, r)
	}
	return out, nil
}

// rowCapture reuses agent/capture/fanotify's BenchmarkCaptureOverhead: the
// workload in a child process on a tmpfs, alternating without and with the
// fanotify source (plus procfs enrichment) capturing that tmpfs; each
// iteration is one pair, and the figures are medians over the pairs.
func (h *harness) rowCapture(ctx context.Context) ([]Result, error) {
	if os.Geteuid() != 0 {
		return []Result{{Name: "capture.slowdown", Skipped: "needs root (fanotify)"}}, nil
	}
	files, pairs, srcFiles := envOr("FWBENCH_CAPTURE_FILES", 100000), envOr("FWBENCH_CAPTURE_PAIRS", 3), envOr("FWBENCH_CAPTURE_SRC_FILES", 20000)
	if h.smoke {
		files, pairs, srcFiles = 1000, 1, 100
	}
	env := []string{"FILEWARD_BENCH_FILES=" + strconv.Itoa(files), "FILEWARD_BENCH_SRC_FILES=" + strconv.Itoa(srcFiles)}
	bl, err := h.goBench(ctx, `^BenchmarkCaptureOverhead$`, fmt.Sprintf("%dx", pairs), 1, env, "./agent/capture/fanotify")
	if err != nil {
		return nil, err
	}
	b, ok := bl["BenchmarkCaptureOverhead"]
	if !ok {
		return nil, fmt.Errorf("BenchmarkCaptureOverhead missing from the output (have %v)", keys(bl))
	}
	m := b.Metrics
	note := fmt.Sprintf("%d pairs; workload %d files ×(create+write, read, rename, delete) + read of %d source files on tmpfs; events open,close,create,modify,rename,delete,attrib,exec (access off); agent = fanotify source + ring + procfs enrichment in the benchmark process (not the full fileward run)", pairs, files, srcFiles)
	slow := Result{Name: "capture.slowdown", Value: m["slowdown"], Unit: "x wall (with/without)",
		Ratio: m["slowdown"], RatioMeans: "workload wall time with agent / without", Notes: note}
	slow.apply(Target{"value", "<=", 1.10})
	wcpu := Result{Name: "capture.workload_cpu_ratio", Value: m["workload-cpu-ratio"], Unit: "x CPU (with/without)",
		Notes: "the workload's own CPU time with / without; less noisy than wall time on 2 cores"}
	cpu := Result{Name: "capture.agent_cpu_s_per_1M", Value: m["agent-cpu-s/1M-events"], Unit: "CPU-s/1M events"}
	rate := Result{Name: "capture.events_per_s_zero_overflow", Value: m["events/s"], Unit: "events/s",
		Notes: fmt.Sprintf("kernel_overflow %v, ring_full %v; the rate the workload produced, all captured (not a saturation search)", m["kernel_overflow"], m["ring_full"])}
	if m["kernel_overflow"] > 0 {
		rate.Value = 0
		rate.Notes = fmt.Sprintf("kernel_overflow %v > 0 at %v events/s: no loss-free rate measured", m["kernel_overflow"], m["events/s"])
	}
	rate.apply(Target{"value", ">=", 200000})
	rss := Result{Name: "capture.peak_rss", Value: m["peak-RSS-MiB"], Unit: "MiB", Notes: "VmHWM of the benchmark process"}
	return []Result{slow, wcpu, cpu, rate, rss}, nil
}

func envOr(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
