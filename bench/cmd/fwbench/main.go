// Command fwbench is Fileward's benchmark harness (`make bench`,
// `make bench-smoke`). It runs every row of issue 7 in one process, with
// baselines measured in the same run, prints a table and writes
// var/bench/results.json. bench/README.md says how each figure is made.
//
// It reuses the package benchmarks where they exist (schema, agent/spool,
// agent/capture/fanotify, through `go test -bench`), runs the real
// `fileward` binary as a child process for the end-to-end rows (so CPU and
// peak RSS come from that process's rusage), and hosts the kfake broker
// and the bulktest server itself.
//
// It must not change anything outside its work directory and the results
// file, except installing the peer forwarders with apt-get when asked to
// (-install-peers).
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

var allRows = []string{"encode", "pipeline", "spool", "kafka", "peer", "elasticsearch", "esfaults", "collector", "capture", "capture_ebpf", "memory", "spoolcodec", "drain"}

type harness struct {
	root             string // module root
	goTool           string
	work             string // scratch directory on the disk under test
	fileward         string // the agent binary
	profiled         string // the agent binary with the CPU-profile hook (see bench/overlay)
	events           int
	smoke            bool
	install          bool
	profile          string // where the pipeline row writes the agent's CPU profile ("" = none)
	kafkaCompression string
	logw             io.Writer
	failed           []string
	kafkaAgent       kafkaAgentFigures
}

func (h *harness) logf(format string, args ...any) {
	fmt.Fprintf(h.logw, "fwbench: "+format+"\n", args...)
}

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "kafka-writer":
			os.Exit(kafkaWriterMain(os.Args[2:]))
		case "kfake":
			os.Exit(kfakeMain(os.Args[2:]))
		}
	}
	os.Exit(run())
}

func run() int {
	smoke := flag.Bool("smoke", false, "small inputs, every row, figures not asserted (make bench-smoke)")
	events := flag.Int("events", 0, "events per end-to-end row (default 1000000, or 5000 with -smoke)")
	rows := flag.String("rows", strings.Join(allRows, ","), "rows to run, comma-separated: "+strings.Join(allRows, ","))
	out := flag.String("out", "", "results file, relative to the module root (default var/bench/results.json, or var/bench/smoke/results.json with -smoke)")
	work := flag.String("work", "", "scratch directory on the disk under test, relative to the module root; emptied first (default var/bench/work, or var/bench/smoke/work)")
	keep := flag.Bool("keep", false, "keep the scratch directory")
	install := flag.Bool("install-peers", true, "apt-get install rsyslog and rsyslog-kafka for the peer row when they are missing (never with -smoke)")
	profile := flag.String("cpuprofile", "default", "CPU profile of the agent in the pipeline row (\"\" = none; default var/bench/pipeline.cpu.pprof, or under var/bench/smoke/); the kafka and drain rows write theirs beside it (kafka.cpu.pprof, kafka-small.cpu.pprof, drain.cpu.pprof)")
	gotool := flag.String("go", "", "the go command (default $GO, else go on $PATH)")
	compression := flag.String("kafka-compression", "lz4", "compression for every Kafka row (the agent, the bare writer and the peers): none|gzip|snappy|lz4|zstd")
	flag.Parse()

	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "fwbench:", err)
		return 1
	}
	base := "var/bench"
	if *smoke {
		base = "var/bench/smoke"
	}
	if *out == "" {
		*out = base + "/results.json"
	}
	if *work == "" {
		*work = base + "/work"
	}
	if *profile == "default" {
		*profile = base + "/pipeline.cpu.pprof"
	}
	if *gotool == "" {
		*gotool = cmp.Or(os.Getenv("GO"), "go")
	}
	h := &harness{root: root, goTool: *gotool, smoke: *smoke, install: *install && !*smoke, logw: os.Stderr, kafkaCompression: *compression}
	h.events = *events
	if h.events == 0 {
		h.events = 1_000_000
		if h.smoke {
			h.events = 5_000
		}
	}
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(root, p)
	}
	h.work = abs(*work)
	h.profile = abs(*profile)
	outPath := abs(*out)
	want := strings.Split(*rows, ",")
	for _, r := range want {
		if !slices.Contains(allRows, r) {
			fmt.Fprintf(os.Stderr, "fwbench: unknown row %q (rows: %s)\n", r, strings.Join(allRows, ","))
			return 2
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if err := os.RemoveAll(h.work); err != nil {
		fmt.Fprintln(os.Stderr, "fwbench:", err)
		return 1
	}
	if err := os.MkdirAll(h.work, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "fwbench:", err)
		return 1
	}
	if !*keep {
		defer os.RemoveAll(h.work)
	}

	rep := &Report{Started: time.Now().UTC(), Smoke: h.smoke, Host: hostInfo(root, h.events)}
	if err := h.build(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "fwbench:", err)
		return 1
	}
	funcs := map[string]func(context.Context) ([]Result, error){
		"encode": h.rowEncode, "pipeline": h.rowPipeline, "spool": h.rowSpool, "kafka": h.rowKafka,
		"peer": h.rowPeer, "elasticsearch": h.rowElasticsearch, "esfaults": h.rowElasticsearchFaults, "capture": h.rowCapture, "capture_ebpf": h.rowCaptureEBPF, "memory": h.rowMemory,
		"collector": h.rowCollector, "spoolcodec": h.rowSpoolCodec, "drain": h.rowDrain,
	}
	for _, name := range allRows {
		if !slices.Contains(want, name) {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		t0 := time.Now()
		h.logf("row %s: start", name)
		rs, err := funcs[name](ctx)
		if err != nil {
			h.failed = append(h.failed, name)
			h.logf("row %s: FAILED: %v", name, err)
			rs = append(rs, Result{Name: name, Skipped: "harness error: " + err.Error()})
		}
		h.logf("row %s: done in %v", name, time.Since(t0).Round(time.Millisecond))
		rep.Results = append(rep.Results, rs...)
		// Write after every row, so an interrupted run keeps what it measured.
		rep.Finished = time.Now().UTC()
		if err := writeReport(outPath, rep); err != nil {
			fmt.Fprintln(os.Stderr, "fwbench:", err)
			return 1
		}
	}
	fmt.Println()
	printTable(os.Stdout, rep.Results)
	fmt.Printf("\nresults: %s\n", outPath)
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "fwbench: interrupted")
		return 1
	}
	if len(h.failed) > 0 {
		fmt.Fprintf(os.Stderr, "fwbench: the harness failed in rows: %s\n", strings.Join(h.failed, ", "))
		return 1
	}
	return 0
}

// build compiles the agent twice into the work directory: as shipped, and
// with bench/overlay/cpuprofile.go.txt added to package main through
// `go build -overlay` (the repo is not touched), for the pipeline profile.
func (h *harness) build(ctx context.Context) error {
	h.fileward = filepath.Join(h.work, "bin", "fileward")
	h.profiled = filepath.Join(h.work, "bin", "fileward-profiled")
	if err := h.goRun(ctx, "build", "-o", h.fileward, "./agent/cmd/fileward"); err != nil {
		return err
	}
	if h.profile == "" {
		return nil
	}
	ov := filepath.Join(h.work, "overlay.json")
	target := filepath.Join(h.root, "agent", "cmd", "fileward", "zz_fwbench_cpuprofile.go")
	src := filepath.Join(h.root, "bench", "overlay", "cpuprofile.go.txt")
	if err := os.WriteFile(ov, fmt.Appendf(nil, `{"Replace":{%q:%q}}`, target, src), 0o644); err != nil {
		return err
	}
	return h.goRun(ctx, "build", "-overlay", ov, "-o", h.profiled, "./agent/cmd/fileward")
}

func (h *harness) goRun(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, h.goTool, args...)
	cmd.Dir = h.root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Stdout, cmd.Stderr = h.logw, h.logw
	h.logf("$ go %s", strings.Join(args, " "))
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

func moduleRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/fileward/fileward") {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("run fwbench inside the fileward module (no go.mod above %s)", wd)
		}
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func hostInfo(root string, events int) HostInfo {
	hi := HostInfo{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), Events: events}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		hi.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	if out, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output(); err == nil {
		hi.Commit = strings.TrimSpace(string(out))
	}
	return hi
}
