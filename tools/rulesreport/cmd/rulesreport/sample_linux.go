//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// cmdLinuxSample runs the real agent (`fileward run`, fanotify source, file
// sink) on a tmpfs it mounts, performs a fixed workload of file operations
// and program runs on it, and writes the agent's own NDJSON output: real
// fanotify-produced documents for the report's inventory.
func cmdLinuxSample(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("linux-sample", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bin := fs.String("fileward", "bin/fileward", "the fileward binary")
	out := fs.String("o", "", "output NDJSON file")
	if err := fs.Parse(args); err != nil || *out == "" {
		fmt.Fprintln(stderr, "usage: rulesreport linux-sample -fileward BIN -o NDJSON")
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(stderr, "linux-sample: fanotify needs root")
		return 1
	}
	docs, err := linuxSample(ctx, absPath(*bin), stderr)
	if err != nil {
		fmt.Fprintf(stderr, "linux-sample: %v\n", err)
		return 1
	}
	if err := os.WriteFile(*out, docs, 0o644); err != nil {
		fmt.Fprintf(stderr, "linux-sample: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "linux-sample: %d documents in %s\n", bytes.Count(docs, []byte("\n")), *out)
	return 0
}

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func linuxSample(ctx context.Context, bin string, stderr io.Writer) ([]byte, error) {
	dir, err := os.MkdirTemp("", "rulesreport-sample-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		return nil, err
	}
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=64m,mode=0755"); err != nil {
		return nil, fmt.Errorf("mount tmpfs: %w", err)
	}
	defer unix.Unmount(mnt, unix.MNT_DETACH)
	work := filepath.Join(mnt, "work")
	data := filepath.Join(mnt, "data")
	outFile := filepath.Join(mnt, "out", "events.ndjson")
	if err := os.Mkdir(work, 0o755); err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "fileward.yaml")
	write := func(extra string) error {
		return os.WriteFile(cfg, fmt.Appendf(nil, `agent: {data_dir: %[1]s, heartbeat: 0s}
source:
  type: fanotify
  events: [open, close, create, modify, rename, delete, attrib, exec]
  fanotify: {marks: [%[2]s], mark_type: filesystem%[4]s}
filters: {aggregate_window: 200ms}
batch: {max_wait: 100ms}
sinks:
  - {name: local, type: file, file: {path: %[3]s}}
metrics: {listen: ""}
`, data, mnt, outFile, extra), 0o644)
	}
	// Process arguments from /proc are opt-in where the agent has the
	// option (source.fanotify.process_args); use it when check-config
	// accepts it, as a deployment that wants the rules would.
	if err := write(", process_args: true"); err != nil {
		return nil, err
	}
	if out, err := exec.CommandContext(ctx, bin, "check-config", "-c", cfg).CombinedOutput(); err != nil {
		fmt.Fprintf(stderr, "linux-sample: this agent has no source.fanotify.process_args (%s); sampling without it\n", bytes.TrimSpace(out))
		if err := write(""); err != nil {
			return nil, err
		}
	} else {
		fmt.Fprintln(stderr, "linux-sample: with source.fanotify.process_args: true")
	}
	agent := exec.CommandContext(ctx, bin, "run", "-c", cfg)
	var agentErr lockedBuf
	agent.Stderr = &agentErr
	if err := agent.Start(); err != nil {
		return nil, err
	}
	waited := false
	defer func() {
		if !waited {
			agent.Process.Kill()
			agent.Wait()
		}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(agentErr.String(), "fanotify on") {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the agent did not start fanotify capture:\n%s", agentErr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := workload(ctx, work); err != nil {
		return nil, err
	}
	sentinel := filepath.Join(work, "sentinel.done")
	if err := os.WriteFile(sentinel, nil, 0o644); err != nil {
		return nil, err
	}
	deadline = time.Now().Add(20 * time.Second)
	for {
		b, _ := os.ReadFile(outFile)
		if bytes.Contains(b, []byte(`"`+sentinel+`"`)) {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the sentinel's document never arrived:\n%s", agentErr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	agent.Process.Signal(syscall.SIGTERM)
	waited = true
	if err := agent.Wait(); err != nil {
		return nil, fmt.Errorf("agent: %w\n%s", err, agentErr.String())
	}
	b, err := os.ReadFile(outFile)
	if err != nil {
		return nil, err
	}
	// Keep the documents of the workload (the sentinel's included).
	var kept bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) > 0 {
			kept.Write(sc.Bytes())
			kept.WriteByte('\n')
		}
	}
	if kept.Len() == 0 {
		return nil, errors.New("the agent wrote no documents")
	}
	return kept.Bytes(), nil
}

// workload performs file operations of every kind the agent maps, from this
// process and from programs it runs (copies of system binaries, so that
// process.executable lies on the watched filesystem and the exec is seen).
func workload(ctx context.Context, work string) error {
	p := func(parts ...string) string { return filepath.Join(append([]string{work}, parts...)...) }
	step := func() { time.Sleep(30 * time.Millisecond) }
	ops := []func() error{
		func() error { return os.WriteFile(p("report.TXT"), []byte("hello"), 0o644) }, // create, modify; upper-case extension
		func() error { _, err := os.ReadFile(p("report.TXT")); return err },           // open, close
		func() error { return os.Rename(p("report.TXT"), p("report.pdf")) },           // rename
		func() error { return os.Mkdir(p("sub"), 0o755) },
		func() error { return os.Rename(p("report.pdf"), p("sub", ".hidden.sh")) }, // rename across directories
		func() error { return os.Chmod(p("sub", ".hidden.sh"), 0o755) },            // attributes
		func() error { return os.Chown(p("sub", ".hidden.sh"), 1234, 1234) },
		func() error { return unix.Setxattr(p("sub", ".hidden.sh"), "user.fileward", []byte("x"), 0) },
		func() error { return unix.Removexattr(p("sub", ".hidden.sh"), "user.fileward") },
		func() error { return os.Truncate(p("sub", ".hidden.sh"), 1) },
		func() error { return os.Link(p("sub", ".hidden.sh"), p("libx.so")) },
		func() error { return os.Remove(p("libx.so")) }, // deletion
		func() error { return os.Symlink(p("sub"), p("link")) },
		func() error { return os.Remove(p("link")) },
	}
	for _, op := range ops {
		if err := op(); err != nil {
			return err
		}
		step()
	}
	// Programs: a copied shell that writes a file itself (exec, then file
	// events of the same process), and a copied cp.
	for _, name := range []string{"sh", "cp"} {
		from, err := exec.LookPath(name)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(from)
		if err != nil {
			return err
		}
		if err := os.WriteFile(p("my"+name), b, 0o755); err != nil {
			return err
		}
		step()
	}
	runs := [][]string{
		{p("mysh"), "-c", "echo payload > " + p("dropped.bin") + "; cat " + p("dropped.bin") + " > /dev/null; mv " + p("dropped.bin") + " " + p("sub", "Dropped.PLIST")},
		{p("mycp"), p("sub", "Dropped.PLIST"), p("copy.plist")},
		// A longer-lived process: its arguments are in /proc for a while.
		{p("mysh"), "-c", "sleep 0.3; echo more >> " + p("copy.plist")},
	}
	for _, argv := range runs {
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Dir = work
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %w: %s", argv[0], err, out)
		}
		step()
	}
	return os.RemoveAll(p("sub"))
}
