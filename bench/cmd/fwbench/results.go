package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is one row of var/bench/results.json.
//
// Ratio is the figure the row's target is stated in (see bench/README.md):
// for a speed it is ours/baseline (higher is better), for a cost such as
// ns/event or a workload's wall time it is the multiple the target names
// (encode: baseline ns / our ns; capture: with agent / without). RatioMeans
// says which, in words. Met is nil when the row has no target.
type Result struct {
	Name         string  `json:"name"`
	Value        float64 `json:"value"`
	Unit         string  `json:"unit"`
	Baseline     float64 `json:"baseline,omitempty"`
	BaselineUnit string  `json:"baseline_unit,omitempty"`
	BaselineName string  `json:"baseline_name,omitempty"`
	Ratio        float64 `json:"ratio,omitempty"`
	RatioMeans   string  `json:"ratio_means,omitempty"`
	Target       string  `json:"target,omitempty"`
	Met          *bool   `json:"met"`
	Skipped      string  `json:"skipped,omitempty"`
	Notes        string  `json:"notes,omitempty"`
}

// Target is a bound on either the value or the ratio of a Result.
type Target struct {
	On string // "value" or "ratio"
	Op string // ">=" or "<="
	X  float64
}

func (t Target) String() string {
	if t.On == "" {
		return ""
	}
	return fmt.Sprintf("%s %s %s", t.On, t.Op, trim(t.X))
}

// apply sets r.Target and r.Met from t.
func (r *Result) apply(t Target) {
	if t.On == "" {
		return
	}
	r.Target = t.String()
	v := r.Value
	if t.On == "ratio" {
		v = r.Ratio
	}
	var met bool
	switch t.Op {
	case ">=":
		met = v >= t.X
	case "<=":
		met = v <= t.X
	}
	if math.IsNaN(v) || (t.On == "ratio" && r.Baseline == 0 && r.Ratio == 0) {
		met = false
	}
	r.Met = &met
}

// Report is the whole results file.
type Report struct {
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Smoke    bool      `json:"smoke"`
	Host     HostInfo  `json:"host"`
	Results  []Result  `json:"results"`
}

// HostInfo describes the machine the figures come from.
type HostInfo struct {
	CPUs      int    `json:"cpus"`
	Kernel    string `json:"kernel"`
	GoVersion string `json:"go_version"`
	Commit    string `json:"commit"`
	Events    int    `json:"events"`
}

func writeReport(path string, r *Report) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func printTable(w io.Writer, rs []Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "name\tvalue\tunit\tbaseline\tbaseline_unit\tratio\ttarget\tmet")
	for _, r := range rs {
		if r.Skipped != "" {
			fmt.Fprintf(tw, "%s\t-\t%s\t-\t\t-\t%s\tskipped: %s\n", r.Name, r.Unit, r.Target, r.Skipped)
			continue
		}
		met := "-"
		if r.Met != nil {
			met = map[bool]string{true: "yes", false: "NO"}[*r.Met]
		}
		base, ratio := "-", "-"
		if r.Baseline != 0 {
			base = trim(r.Baseline)
		}
		if r.Ratio != 0 {
			ratio = fmt.Sprintf("%.3g", r.Ratio)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, trim(r.Value), r.Unit, base, r.BaselineUnit, ratio, r.Target, met)
	}
	tw.Flush()
}

// trim formats a figure with about four significant digits.
func trim(x float64) string {
	switch ax := math.Abs(x); {
	case ax == 0:
		return "0"
	case ax >= 1e5:
		return fmt.Sprintf("%.0f", x)
	case ax >= 100:
		return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.1f", x), "0"), ".")
	default:
		return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.3f", x), "0"), ".")
	}
}
