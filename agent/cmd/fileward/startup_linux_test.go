//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fileward/fileward/internal/testtool"
	"golang.org/x/sys/unix"
)

// nobody is the unprivileged uid/gid the tests run the agent as.
const nobody = 65534

// coverEnvFor returns the environment for a run of the binary as uid. In a
// coverage build (make cover) the binary writes its counters to GOCOVERDIR,
// which uid may not be able to write: it gets a directory of its own, whose
// files are moved to GOCOVERDIR when the test ends, so that what only an
// unprivileged run reaches counts too. Otherwise it is the test's own.
func coverEnvFor(t *testing.T, uid int) []string {
	t.Helper()
	env := os.Environ()
	dst := os.Getenv("GOCOVERDIR")
	if dst == "" {
		return env
	}
	tmp, err := os.MkdirTemp("", "fileward-cover-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(tmp, uid, uid); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		defer os.RemoveAll(tmp)
		files, _ := os.ReadDir(tmp)
		for _, f := range files {
			b, err := os.ReadFile(filepath.Join(tmp, f.Name()))
			if err == nil {
				err = os.WriteFile(filepath.Join(dst, f.Name()), b, 0o644)
			}
			if err != nil {
				t.Errorf("keeping the coverage data of the run as uid %d: %v", uid, err)
			}
		}
	})
	return append(env, "GOCOVERDIR="+tmp)
}

// worldDir is a fresh directory every user may enter and write, for runs
// of the agent as nobody (t.TempDir is root's alone).
func worldDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "fileward-start-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestStartFailures runs `fileward run` for every way the agent can fail to
// start after its config is valid. Each must exit 1 with exactly one line on
// stderr that names the cause and the fix, and no stack trace.
func TestStartFailures(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the cases mount filesystems and drop to an unprivileged user")
	}
	sink := func(dir string) string {
		return fmt.Sprintf("sinks:\n  - {name: local, type: file, file: {path: %s/out/events.ndjson}}\n", dir)
	}
	replayIn := func(t *testing.T, dir string) string {
		in := filepath.Join(dir, "in.ndjson")
		demo, err := os.ReadFile(filepath.Join("demo", "eslogger-demo.ndjson"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(in, demo, 0o644); err != nil {
			t.Fatal(err)
		}
		return in
	}
	cases := []struct {
		name string
		// setup writes what the case needs under dir and returns the config.
		setup func(t *testing.T, dir string) string
		asUID bool
		// warning is a config warning expected before the failure.
		warning string
		want    []string
	}{
		{
			name: "missing replay file",
			setup: func(t *testing.T, dir string) string {
				return fmt.Sprintf("agent: {data_dir: %[1]s/data}\nsource: {type: replay, replay: {path: %[1]s/no-such.ndjson}}\nmetrics: {listen: \"\"}\n", dir) + sink(dir)
			},
			want: []string{"source.replay.path", "no-such.ndjson", "no such file", "correct the path"},
		},
		{
			name: "metrics port in use",
			setup: func(t *testing.T, dir string) string {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { ln.Close() })
				return fmt.Sprintf("agent: {data_dir: %[1]s/data}\nsource: {type: replay, replay: {path: %[2]s}}\nmetrics: {listen: %[3]q}\n", dir, replayIn(t, dir), ln.Addr().String()) + sink(dir)
			},
			want: []string{"metrics.listen", "address already in use", "set metrics.listen to a free port"},
		},
		{
			name: "second agent on the same data_dir",
			setup: func(t *testing.T, dir string) string {
				cfg := fmt.Sprintf("agent: {data_dir: %[1]s/data}\nsource: {type: replay, replay: {path: %[2]s, loop: true, rate: 10}}\nmetrics: {listen: \"\"}\n", dir, replayIn(t, dir)) + sink(dir)
				p := filepath.Join(dir, "first.yaml")
				os.WriteFile(p, []byte(cfg), 0o644)
				first := exec.Command(binary, "run", "-c", p)
				var errb testtool.SyncBuffer
				first.Stderr = &errb
				if err := first.Start(); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { first.Process.Signal(syscall.SIGTERM); first.Wait() })
				deadline := time.Now().Add(20 * time.Second)
				for !strings.Contains(errb.String(), "capturing with") {
					if time.Now().After(deadline) {
						t.Fatalf("the first agent did not start:\n%s", errb.String())
					}
					time.Sleep(20 * time.Millisecond)
				}
				return cfg
			},
			want: []string{"another fileward agent is running on this data_dir (pid ", "stop the other agent first"},
		},
		{
			name: "read-only spool directory",
			setup: func(t *testing.T, dir string) string {
				testtool.MountTmpfs(t, filepath.Join(dir, "data", "spool"), unix.MS_RDONLY, "size=1m")
				return fmt.Sprintf("agent: {data_dir: %[1]s/data}\nsource: {type: replay, replay: {path: %[2]s}}\nmetrics: {listen: \"\"}\n", dir, replayIn(t, dir)) + sink(dir)
			},
			want: []string{"spool", "read-only file system", "remount it read-write"},
		},
		{
			name: "fresh data_dir on a full disk",
			setup: func(t *testing.T, dir string) string {
				in := replayIn(t, dir)
				disk := filepath.Join(dir, "disk")
				testtool.MountTmpfs(t, disk, 0, "size=64k")
				f, err := os.Create(filepath.Join(disk, "filler"))
				if err != nil {
					t.Fatal(err)
				}
				f.Write(make([]byte, 1<<20)) // fails once the disk is full
				f.Close()
				return fmt.Sprintf("agent: {data_dir: %[1]s/data}\nsource: {type: replay, replay: {path: %[2]s}}\nmetrics: {listen: \"\"}\n", disk, in) + sink(dir)
			},
			want: []string{"agent.data_dir", "no space left on device", "free space"},
		},
		{
			name: "metrics address not on this host",
			setup: func(t *testing.T, dir string) string {
				// 192.0.2.0/24 is TEST-NET-1 (RFC 5737): on no host.
				return fmt.Sprintf("agent: {data_dir: %[1]s/data}\nsource: {type: replay, replay: {path: %[2]s}}\nmetrics: {listen: \"192.0.2.1:9464\"}\n", dir, replayIn(t, dir)) + sink(dir)
			},
			warning: `metrics.listen: warning: "192.0.2.1:9464" is not a loopback address`,
			want:    []string{"metrics.listen", "192.0.2.1:9464", "cannot assign requested address", "set metrics.listen to a local address"},
		},
		{
			name:  "data_dir the user may not write",
			asUID: true,
			setup: func(t *testing.T, dir string) string {
				ro := filepath.Join(dir, "root-owned")
				if err := os.Mkdir(ro, 0o755); err != nil {
					t.Fatal(err)
				}
				return fmt.Sprintf("agent: {data_dir: %[1]s/data}\nsource: {type: replay, replay: {path: %[2]s}}\nmetrics: {listen: \"\"}\n", ro, replayIn(t, dir)) + sink(dir)
			},
			want: []string{"agent.data_dir", "root-owned/data", "permission denied", "this user may not write there"},
		},
		{
			name: "fanotify mark that does not exist",
			setup: func(t *testing.T, dir string) string {
				return fmt.Sprintf("agent: {data_dir: %[1]s/data}\nsource: {type: fanotify, fanotify: {marks: [%[1]s/no-such-dir]}}\nmetrics: {listen: \"\"}\n", dir) + sink(dir)
			},
			want: []string{"source.fanotify.marks", "no-such-dir", "does not exist", "create it or remove it"},
		},
		{
			name:  "fanotify as an unprivileged user",
			asUID: true,
			setup: func(t *testing.T, dir string) string {
				return fmt.Sprintf("agent: {data_dir: %[1]s/data}\nsource: {type: fanotify, fanotify: {marks: [%[1]s]}}\nmetrics: {listen: \"\"}\n", dir) + sink(dir)
			},
			want: []string{"fanotify needs root or CAP_SYS_ADMIN", "uid 65534", "run fileward as root"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := worldDir(t)
			cfg := filepath.Join(dir, "c.yaml")
			if err := os.WriteFile(cfg, []byte(tc.setup(t, dir)), 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, binary, "run", "-c", cfg)
			if tc.asUID {
				cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
				cmd.Env = coverEnvFor(t, nobody)
			}
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := cmd.ProcessState.ExitCode()
			if err != nil && code < 0 {
				t.Fatalf("run: %v\n%s", err, stderr.String())
			}
			out := stderr.String()
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if strings.Contains(out, "goroutine ") || strings.Contains(out, "panic") {
				t.Errorf("a stack trace reached the user:\n%s", out)
			}
			lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
			if tc.warning != "" {
				if !strings.HasPrefix(lines[0], cfg+":") || !strings.Contains(lines[0], tc.warning) {
					t.Errorf("first line %q, want the config warning %q", lines[0], tc.warning)
				}
				lines = lines[1:]
			}
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "fileward: cannot start: ") {
				t.Fatalf("want one line \"fileward: cannot start: ...\", got:\n%s", out)
			}
			t.Log(lines[0])
			for _, w := range tc.want {
				if !strings.Contains(lines[0], w) {
					t.Errorf("message lacks %q:\n%s", w, lines[0])
				}
			}
		})
	}
}
