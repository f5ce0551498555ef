//go:build linux

// Command hookfloor measures what attaching BPF programs costs a
// file-heavy workload before any program does any work: the floor under
// agent/capture/ebpf's overhead, for each kind of hook that sees file
// syscalls on a kernel that refuses fentry/fexit and BPF LSM programs.
//
// It runs BenchmarkCaptureOverhead's workload (internal/capturebench: create
// and write, read, rename and delete small files, then read a copy of
// $GOROOT/src) in a child process on a tmpfs, in rounds that alternate the
// order of four configurations: no programs; an empty program on each of
// the agent's syscall tracepoints (syscalls:sys_enter_X/sys_exit_X); raw
// tracepoints on raw_syscalls:sys_enter/sys_exit that filter by syscall
// number; and the same as BTF tracepoints. It prints the workload's wall
// and CPU time with / without for each. As root, x86_64:
//
//	clang -O2 -g -target bpf -D__TARGET_ARCH_x86 -c bench/cmd/hookfloor/bpf/hookfloor.bpf.c -o var/hookfloor.o
//	go run ./bench/cmd/hookfloor -obj var/hookfloor.o
//
// docs/linux.md ("Overhead") has the figures.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/fileward/fileward/internal/capturebench"
)

// tracepoints are the syscall tracepoints agent/capture/ebpf attaches to
// (those this kernel lacks are skipped, as the agent skips them).
var tracepoints = strings.Fields(`sys_exit_openat sys_exit_openat2 sys_exit_open sys_exit_creat
sys_enter_write sys_enter_pwrite64 sys_enter_writev sys_enter_pwritev sys_enter_pwritev2
sys_enter_close sys_enter_dup2 sys_enter_dup3
sys_enter_unlinkat sys_enter_unlink sys_enter_rmdir sys_enter_mkdirat sys_enter_mkdir
sys_enter_symlinkat sys_enter_symlink sys_enter_renameat2 sys_enter_renameat sys_enter_rename
sys_enter_linkat sys_enter_link sys_enter_fchmodat sys_enter_fchmodat2 sys_enter_chmod
sys_enter_fchownat sys_enter_chown sys_enter_lchown sys_enter_fchmod sys_enter_fchown
sys_exit_unlinkat sys_exit_unlink sys_exit_rmdir sys_exit_mkdirat sys_exit_mkdir
sys_exit_symlinkat sys_exit_symlink sys_exit_renameat2 sys_exit_renameat sys_exit_rename
sys_exit_linkat sys_exit_link sys_exit_fchmodat sys_exit_fchmodat2 sys_exit_chmod
sys_exit_fchownat sys_exit_chown sys_exit_lchown`)

var configs = []string{"none", "syscall-tracepoints", "raw-tracepoints", "btf-tracepoints"}

func main() {
	capturebench.Child()
	obj := flag.String("obj", "", "the compiled bpf/hookfloor.bpf.c (required)")
	files := flag.Int("files", 100000, "small files the workload creates")
	srcFiles := flag.Int("src-files", 20000, "files of $GOROOT/src it reads")
	rounds := flag.Int("rounds", 4, "rounds of the four configurations")
	flag.Parse()
	if *obj == "" {
		fmt.Fprintln(os.Stderr, "hookfloor: -obj is required (see go doc ./bench/cmd/hookfloor)")
		os.Exit(2)
	}
	if err := run(*obj, *files, *srcFiles, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "hookfloor:", err)
		os.Exit(1)
	}
}

func run(obj string, files, srcFiles, rounds int) error {
	coll, err := ebpf.LoadCollection(obj)
	if err != nil {
		return fmt.Errorf("load %s: %w", obj, err)
	}
	defer coll.Close()
	mnt, err := os.MkdirTemp("", "hookfloor")
	if err != nil {
		return err
	}
	defer os.Remove(mnt)
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=1g"); err != nil {
		return fmt.Errorf("mount a tmpfs on %s (root is needed): %w", mnt, err)
	}
	defer unix.Unmount(mnt, unix.MNT_DETACH)
	src := filepath.Join(mnt, "src")
	copied, err := capturebench.CopySource(src, srcFiles)
	if err != nil {
		return fmt.Errorf("copy $GOROOT/src: %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	fmt.Printf("workload: %d files (create+write, read, rename, delete) and a read of %d source files, on a tmpfs\n", files, copied)
	wall := make([]time.Duration, len(configs))
	cpu := make([]time.Duration, len(configs))
	for r := 0; r < rounds; r++ {
		for k := range configs {
			c := k
			if r%2 == 1 {
				c = len(configs) - 1 - k
			}
			links, err := attach(coll, configs[c])
			if err != nil {
				return err
			}
			w, u, err := capturebench.RunWorkload(self, filepath.Join(mnt, fmt.Sprintf("run%d-%d", r, c)), src, files)
			for _, l := range links {
				l.Close()
			}
			if err != nil {
				return err
			}
			wall[c] += w
			cpu[c] += u
			fmt.Printf("round %d, %s (%d programs attached): wall %v, workload CPU %v\n", r, configs[c], len(links), w.Round(time.Millisecond), u.Round(time.Millisecond))
		}
	}
	for c, name := range configs {
		fmt.Printf("%s: wall %.3fx, workload CPU %.3fx (with / without, totals over %d rounds)\n", name,
			float64(wall[c])/float64(wall[0]), float64(cpu[c])/float64(cpu[0]), rounds)
	}
	return nil
}

// attach attaches the programs of one configuration.
func attach(coll *ebpf.Collection, config string) ([]link.Link, error) {
	var links []link.Link
	fail := func(err error) ([]link.Link, error) {
		for _, l := range links {
			l.Close()
		}
		return nil, err
	}
	switch config {
	case "syscall-tracepoints":
		for _, name := range tracepoints {
			l, err := link.Tracepoint("syscalls", name, coll.Programs["tp_empty"], nil)
			if errors.Is(err, os.ErrNotExist) {
				continue // not on this architecture or kernel
			}
			if err != nil {
				return fail(fmt.Errorf("attach syscalls:%s: %w", name, err))
			}
			links = append(links, l)
		}
	case "raw-tracepoints":
		for name, prog := range map[string]string{"sys_enter": "raw_enter", "sys_exit": "raw_exit"} {
			l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: name, Program: coll.Programs[prog]})
			if err != nil {
				return fail(fmt.Errorf("attach raw tracepoint %s: %w", name, err))
			}
			links = append(links, l)
		}
	case "btf-tracepoints":
		for _, prog := range []string{"btf_enter", "btf_exit"} {
			l, err := link.AttachTracing(link.TracingOptions{Program: coll.Programs[prog]})
			if err != nil {
				return fail(fmt.Errorf("attach BTF tracepoint %s: %w", prog, err))
			}
			links = append(links, l)
		}
	}
	return links, nil
}
