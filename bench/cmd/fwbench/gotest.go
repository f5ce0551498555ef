package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// BenchLine is one parsed line of `go test -bench` output: the benchmark's
// name without the -GOMAXPROCS suffix, its iteration count, and every
// "value unit" pair it reported (ns/op, B/op, allocs/op, MB/s and custom
// b.ReportMetric units).
type BenchLine struct {
	Name    string
	N       int64
	Metrics map[string]float64
}

var procSuffix = regexp.MustCompile(`-\d+$`)

// parseBench reads `go test -bench` output and returns its benchmark lines
// by name. A name seen several times (-count > 1) gets the median of each
// metric, and N is the number of runs.
func parseBench(r io.Reader) (map[string]BenchLine, error) {
	runs := map[string][]map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue // a log line that starts with a benchmark's name
		}
		bl := BenchLine{Name: procSuffix.ReplaceAllString(f[0], ""), N: n, Metrics: map[string]float64{}}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("benchmark %s: value %q: %w", f[0], f[i], err)
			}
			bl.Metrics[f[i+1]] = v
		}
		runs[bl.Name] = append(runs[bl.Name], bl.Metrics)
	}
	out := map[string]BenchLine{}
	for name, rs := range runs {
		bl := BenchLine{Name: name, N: int64(len(rs)), Metrics: map[string]float64{}}
		if len(rs) == 1 {
			bl.Metrics = rs[0]
		} else {
			for unit := range rs[0] {
				var xs []float64
				for _, m := range rs {
					xs = append(xs, m[unit])
				}
				bl.Metrics[unit] = median(xs)
			}
		}
		out[name] = bl
	}
	return out, sc.Err()
}

// goBench runs `go test -run ^$ -bench pattern -benchtime benchtime
// -count count -benchmem` over pkgs in the module root, echoes the output to the log,
// and returns the parsed lines. env is added to the environment.
func (h *harness) goBench(ctx context.Context, pattern, benchtime string, count int, env []string, pkgs ...string) (map[string]BenchLine, error) {
	args := append([]string{"test", "-run", "^$", "-bench", pattern, "-benchtime", benchtime, "-benchmem", "-count", strconv.Itoa(count), "-timeout", "20m"}, pkgs...)
	cmd := exec.CommandContext(ctx, h.goTool, args...)
	cmd.Dir = h.root
	cmd.Env = append(os.Environ(), env...)
	var buf bytes.Buffer
	cmd.Stdout = io.MultiWriter(&buf, h.logw)
	cmd.Stderr = io.MultiWriter(&buf, h.logw)
	h.logf("$ go %s", strings.Join(args, " "))
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, tail(buf.String(), 2000))
	}
	return parseBench(&buf)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
