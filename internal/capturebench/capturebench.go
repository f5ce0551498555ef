// Package capturebench holds what the capture sources' benchmarks share
// (agent/capture/fanotify and agent/capture/ebpf run the same workload, so
// that their figures compare): the file workload and the paced generator,
// both run as child processes of the test binary so that they are not the
// process being measured, and the benchmarks' process measurements.
package capturebench

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fileward/fileward/internal/fstree"
)

// Child runs the workload or the generator and exits when the environment
// asks the test binary to be one (FILEWARD_WORKLOAD: Workload in that
// directory, FILEWARD_WORKLOAD_SRC and FILEWARD_WORKLOAD_FILES;
// FILEWARD_GEN_DIR: Generate). Otherwise it returns. A TestMain calls it
// first.
func Child() {
	if dir := os.Getenv("FILEWARD_GEN_DIR"); dir != "" {
		if err := Generate(dir); err != nil {
			fmt.Fprintln(os.Stderr, "generate:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if dir := os.Getenv("FILEWARD_WORKLOAD"); dir != "" {
		n, _ := strconv.Atoi(os.Getenv("FILEWARD_WORKLOAD_FILES"))
		if err := Workload(dir, os.Getenv("FILEWARD_WORKLOAD_SRC"), n); err != nil {
			fmt.Fprintln(os.Stderr, "workload:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

// CopySource copies up to max files of $GOROOT/src (GOROOT, else
// /usr/local/go) into dst, for the workload's second part, and returns how
// many it copied.
func CopySource(dst string, max int) (int, error) {
	goroot := os.Getenv("GOROOT")
	if goroot == "" {
		goroot = "/usr/local/go"
	}
	return fstree.Copy(filepath.Join(goroot, "src"), dst, max)
}

// RunWorkload runs Workload(dir, src, n) in a child process of self (a
// binary that calls Child first), removes dir after, and returns the
// child's wall time and CPU time. The child has its own session, so its
// own scheduler autogroup: the CPU share it gets on a shared host then does
// not depend on whether a capturing process's threads are busy.
func RunWorkload(self, dir, src string, n int) (wall, cpu time.Duration, err error) {
	defer os.RemoveAll(dir)
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), "FILEWARD_WORKLOAD="+dir, "FILEWARD_WORKLOAD_SRC="+src, "FILEWARD_WORKLOAD_FILES="+strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, 0, fmt.Errorf("workload: %w", err)
	}
	wall = time.Since(t0)
	return wall, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), nil
}

// Workload creates and writes, reads, renames and deletes n small files in
// dir (1,000 to a subdirectory), then walks src, when it is not empty, and
// reads every file.
func Workload(dir, src string, n int) error {
	const perDir = 1000
	buf := make([]byte, 256)
	for i := range buf {
		buf[i] = byte('a' + i%26)
	}
	rbuf := make([]byte, 64<<10)
	name := func(i int) string { return filepath.Join(dir, strconv.Itoa(i/perDir), "f"+strconv.Itoa(i)) }
	for d := 0; d*perDir < n; d++ {
		if err := os.MkdirAll(filepath.Join(dir, strconv.Itoa(d)), 0o755); err != nil {
			return err
		}
	}
	for i := 0; i < n; i++ {
		if err := os.WriteFile(name(i), buf, 0o644); err != nil {
			return err
		}
	}
	for i := 0; i < n; i++ {
		f, err := os.Open(name(i))
		if err != nil {
			return err
		}
		f.Read(rbuf)
		f.Close()
	}
	for i := 0; i < n; i++ {
		if err := os.Rename(name(i), name(i)+".r"); err != nil {
			return err
		}
	}
	for i := 0; i < n; i++ {
		if err := os.Remove(name(i) + ".r"); err != nil {
			return err
		}
	}
	if src == "" {
		return nil
	}
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		for {
			if _, err := f.Read(rbuf); err != nil {
				break
			}
		}
		return f.Close()
	})
}

// Generate opens and closes FILEWARD_GEN_FILES files (default 10,000) in
// dir round-robin at FILEWARD_GEN_RATE opens per second (default 10,000)
// for FILEWARD_GEN_MILLIS (default 3,000) and prints how many opens it
// made.
func Generate(dir string) error {
	rate := EnvInt("FILEWARD_GEN_RATE", 10000)
	files := EnvInt("FILEWARD_GEN_FILES", 10000)
	d := time.Duration(EnvInt("FILEWARD_GEN_MILLIS", 3000)) * time.Millisecond
	names := make([]string, files)
	for i := range names {
		names[i] = filepath.Join(dir, "f"+strconv.Itoa(i))
	}
	t0 := time.Now()
	done := 0
	for {
		el := time.Since(t0)
		if el >= d {
			break
		}
		want := int(float64(rate) * el.Seconds())
		for ; done < want; done++ {
			fd, err := unix.Open(names[done%files], unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("open: %w", err)
			}
			unix.Close(fd)
		}
		time.Sleep(time.Millisecond - time.Since(t0.Add(el)))
	}
	fmt.Println(done)
	return nil
}

// EnvInt is the positive integer in the environment variable name, or def.
func EnvInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// CPUTime is this process's user and system CPU time so far.
func CPUTime() time.Duration {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// PeakRSS is this process's peak resident set (VmHWM) in bytes, 0 where
// /proc does not say.
func PeakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
