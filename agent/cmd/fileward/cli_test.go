package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fileward/fileward/internal/testtool"
)

// TestHelp: every way of asking for help exits 0 and prints on stdout; a
// command's help has one line per flag and an example.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		out, errOut, code := fw(t, nil, args...)
		if code != 0 || !strings.Contains(out, "commands:") || !strings.Contains(out, "check-config") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
	for _, c := range []string{"run", "check-config", "convert", "collect", "spool", "reload", "version", "help"} {
		for _, args := range [][]string{{"help", c}, {c, "-h"}, {c, "--help"}} {
			out, errOut, code := fw(t, nil, args...)
			if code != 0 {
				t.Errorf("%v: exit %d: %s", args, code, errOut)
				continue
			}
			if !strings.HasPrefix(out, "usage: fileward "+c) || !strings.Contains(out, "\nexample:\n  fileward") && !strings.Contains(out, "| fileward") {
				t.Errorf("%v: help lacks its usage or example:\n%s", args, out)
			}
			// One line per flag: each flag line has its description.
			if i := strings.Index(out, "\nflags:\n"); i >= 0 {
				for _, l := range strings.Split(strings.SplitN(out[i+8:], "\n\n", 2)[0], "\n") {
					if !regexp.MustCompile(`^  --?[a-z-]+( [A-Za-z]+)? +\S`).MatchString(l) {
						t.Errorf("%v: flag line %q is not one line with its description", args, l)
					}
				}
			}
		}
	}
	if out, _, _ := fw(t, nil, "help", "run"); !strings.Contains(out, "--log-format") || !strings.Contains(out, "-c FILE") {
		t.Errorf("run's help lacks its flags:\n%s", out)
	}
	if _, errOut, code := fw(t, nil, "help", "frobnicate"); code != 2 || !strings.Contains(errOut, "unknown command") {
		t.Errorf("help of an unknown command: %d %q", code, errOut)
	}
}

func TestVersionFlag(t *testing.T) {
	for _, arg := range []string{"--version", "-version"} {
		out, _, code := fw(t, nil, arg)
		if code != 0 || !strings.HasPrefix(out, "fileward ") || !strings.Contains(out, "\ncommit ") {
			t.Errorf("%s: %d %q", arg, code, out)
		}
	}
	// A build with the version from the linker, as make build does it.
	bin := filepath.Join(t.TempDir(), "fw")
	if out, err := exec.Command("go", "build", "-ldflags", "-X main.version=v0.9.1-test -X main.commit=abc123", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil || !strings.HasPrefix(string(out), "fileward v0.9.1-test\ncommit abc123\n") {
		t.Errorf("--version of a linked build: %v %q", err, out)
	}
}

func TestConvertInputs(t *testing.T) {
	demo, err := os.ReadFile(filepath.Join("demo", "eslogger-demo.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	// - is standard input, also among files.
	out, errOut, code := fw(t, demo, "convert", "--host-id", "h", "--host-name", "n", "-")
	if code != 0 || strings.Count(out, "\n") != 38 {
		t.Errorf("convert -: exit %d, %d lines, %s", code, strings.Count(out, "\n"), errOut)
	}
	dir := t.TempDir()
	for _, c := range []struct{ arg, want string }{
		{filepath.Join(dir, "nope.ndjson"), "no such file or directory"},
		{dir, "is a directory"},
	} {
		out, errOut, code := fw(t, demo, "convert", "--host-id", "h", "--host-name", "n", "-", c.arg)
		if code != 1 || out != "" || !strings.Contains(errOut, c.want) || strings.Contains(errOut, "malformed") {
			t.Errorf("convert - %s: exit %d, stdout %d bytes, stderr %q; want exit 1, nothing converted, %q", c.arg, code, len(out), errOut, c.want)
		}
	}
}

// TestConfigLookup: without -c, commands use $FILEWARD_CONFIG, and with
// neither that nor the default file they refuse instead of running on
// built-in defaults.
func TestConfigLookup(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, fmt.Appendf(nil, "agent: {data_dir: %[1]s/data}\nsinks:\n  - {name: f, type: file, file: {path: %[1]s/out.ndjson}}\n", dir), 0o644)
	// Where the machine has a config at the default path (an installed
	// package, or the package test running beside this one), the children
	// run in a mount namespace of their own with an empty directory over
	// the default path's, so they see no default config.
	hide := false
	if _, err := os.Stat(defaultConfigPath()); err == nil {
		if os.Geteuid() != 0 {
			t.Skipf("%s exists on this machine, and hiding it needs root", defaultConfigPath())
		}
		hide = true
	}
	run := func(env string, args ...string) (string, string, int) {
		cmd := exec.Command(binary, args...)
		if hide {
			script := `mount -t tmpfs -o size=64k fileward-test "$1" && shift && exec "$@"`
			cmd = exec.Command("unshare", append([]string{"--mount", "--propagation", "private", "sh", "-c", script, "sh",
				filepath.Dir(defaultConfigPath()), binary}, args...)...)
		}
		cmd.Env = append(os.Environ(), "FILEWARD_CONFIG="+env)
		cmd.Dir = dir
		var o, e strings.Builder
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		return o.String(), e.String(), code
	}
	if out, errOut, code := run(cfg, "check-config"); code != 0 || out != "ok\n" {
		t.Errorf("check-config with FILEWARD_CONFIG: %d %q %q", code, out, errOut)
	}
	for _, args := range [][]string{{"run"}, {"check-config"}, {"collect"}, {"spool", "stat"}, {"reload"}} {
		_, errOut, code := run("", args...)
		if code != 2 || !strings.Contains(errOut, "no config file") || !strings.Contains(errOut, defaultConfigPath()) {
			t.Errorf("%v without a config: exit %d, %q", args, code, errOut)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "var")); err == nil {
		t.Error("a command without a config made ./var")
	}
}

// TestRunLogSettingsAndMetrics: log.format json and --log-level; the
// start-up names its config; /metrics has fileward_build_info and every
// labelled error counter at zero from the start; `fileward reload` signals
// the running agent.
func TestRunLogSettingsAndMetrics(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.ndjson")
	demo, _ := os.ReadFile(filepath.Join("demo", "eslogger-demo.ndjson"))
	os.WriteFile(in, demo, 0o644)
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, fmt.Appendf(nil, `agent: {data_dir: %[1]s/data, heartbeat: 0s}
source: {type: replay, replay: {path: %[2]s}}
sinks:
  - {name: local, type: file, file: {path: %[1]s/out.ndjson}}
metrics: {listen: "127.0.0.1:0"}
log: {level: warn, format: json}
`, dir, in), 0o644)
	cmd := exec.Command(binary, "run", "-c", cfg, "--log-level", "info")
	var errb testtool.SyncBuffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(errb.String(), "replay reached the end") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	log := errb.String()
	if !strings.Contains(log, "  config: "+cfg+"\n") {
		t.Errorf("the start-up does not name its config:\n%s", log)
	}
	// --log-level info overrides log.level warn; log.format json holds.
	if !strings.Contains(log, `{"time":`) || !strings.Contains(log, `"level":"INFO","msg":"replay reached the end`) {
		t.Errorf("want JSON log lines at info:\n%s", log)
	}
	m := regexp.MustCompile(`metrics on (http://\S+/metrics)`).FindStringSubmatch(log)
	if m == nil {
		t.Fatalf("no metrics address:\n%s", log)
	}
	resp, err := http.Get(m[1])
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`fileward_build_info{commit="`,
		`goversion="go1.`,
		`fileward_sink_errors_total{kind="send",sink="local"} 0`,
		`fileward_sink_errors_total{kind="rejected",sink="local"} 0`,
		`fileward_spool_dropped_events_total{reason="no_space"} 0`,
		`fileward_spool_dropped_events_total{reason="full"} 0`,
		`fileward_events_dropped_total{reason="ring_full"} 0`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// fileward reload finds the agent through the data_dir's pid file.
	out, errOut, code := fw(t, nil, "reload", "-c", cfg)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("pid %d", cmd.Process.Pid)) {
		t.Errorf("reload: %d %q %q", code, out, errOut)
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(errb.String(), "config reloaded") && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(errb.String(), "config reloaded") {
		t.Errorf("the agent did not reload:\n%s", errb.String())
	}
}

func TestBadLogSettings(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, fmt.Appendf(nil, "agent: {data_dir: %[1]s/data}\nsinks:\n  - {name: f, type: file, file: {path: %[1]s/o.ndjson}}\nlog:\n  format: xml\n", dir), 0o644)
	if _, errOut, code := fw(t, nil, "check-config", "-c", cfg); code != 2 || !strings.HasPrefix(errOut, cfg+":5: log.format: \"xml\" is not one of: text, json") {
		t.Errorf("check-config: %d %q", code, errOut)
	}
	os.WriteFile(cfg, fmt.Appendf(nil, "agent: {data_dir: %[1]s/data}\nsinks:\n  - {name: f, type: file, file: {path: %[1]s/o.ndjson}}\n", dir), 0o644)
	if _, errOut, code := fw(t, nil, "run", "-c", cfg, "--log-format", "xml"); code != 2 || !strings.Contains(errOut, `log format "xml": use text or json`) {
		t.Errorf("run --log-format xml: %d %q", code, errOut)
	}
}

// TestSpoolPrune: the cursor of a sink no longer configured is removed by
// `fileward spool prune`, which refuses while the agent runs.
func TestSpoolPrune(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.ndjson")
	demo, _ := os.ReadFile(filepath.Join("demo", "eslogger-demo.ndjson"))
	os.WriteFile(in, demo, 0o644)
	cfg := filepath.Join(dir, "c.yaml")
	write := func(sinks string) {
		os.WriteFile(cfg, fmt.Appendf(nil, "agent: {data_dir: %[1]s/data, heartbeat: 0s}\nsource: {type: replay, replay: {path: %[2]s}}\nmetrics: {listen: \"\"}\nsinks:\n%[3]s", dir, in, sinks), 0o644)
	}
	a := fmt.Sprintf("  - {name: a, type: file, file: {path: %s/a.ndjson}}\n", dir)
	b := fmt.Sprintf("  - {name: b, type: file, file: {path: %s/b.ndjson}}\n", dir)
	write(a + b)
	proc := startRun(t, cfg)
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(proc.log(), "replay reached the end") && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	write(a)
	if _, errOut, code := fw(t, nil, "spool", "prune", "-c", cfg); code != 1 || !strings.Contains(errOut, "stop the other agent first") {
		t.Errorf("prune next to a running agent: exit %d, %q", code, errOut)
	}
	if err := proc.stop(); err != nil {
		t.Fatalf("agent: %v\n%s", err, proc.log())
	}
	out, errOut, code := fw(t, nil, "spool", "prune", "-c", cfg)
	if code != 0 || out != "removed the cursor of sink b\n1 cursors removed\n" {
		t.Errorf("prune: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "spool", "cursors", "b.cursor")); err == nil {
		t.Error("b's cursor file is still there")
	}
	if out, _, code := fw(t, nil, "spool", "prune", "-c", cfg); code != 0 || out != "0 cursors removed\n" {
		t.Errorf("second prune: %d %q", code, out)
	}
}
