// SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0
//
// hookfloor: empty programs on each kind of hook that can see file
// syscalls on a kernel that refuses fentry/fexit and BPF LSM (see
// bench/cmd/hookfloor). Each program does what the agent's programs do
// before any record: find out whether the syscall concerns it, read the
// current task's tgid, compare it with a target (pid 1: nothing is ever
// reported), and return. Build: see main.go.

#include "../../../../agent/capture/ebpf/bpf/vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "GPL";

const volatile __u32 target_tgid = 1;

static __always_inline int other_task(void)
{
	return (bpf_get_current_pid_tgid() >> 32) != target_tgid;
}

// The per-syscall tracepoints (syscalls:sys_enter_X / sys_exit_X): the
// kernel calls a program only for the syscalls it is attached to.
SEC("tracepoint/syscalls/sys_enter_openat")
int tp_empty(void *ctx)
{
	if (other_task())
		return 0;
	return 0;
}

// x86_64 numbers of the syscalls the agent attaches to.
static __always_inline int file_syscall(long id)
{
	switch (id) {
	case 257: case 437: case 2: case 85:          // openat openat2 open creat
	case 1: case 18: case 20: case 296: case 328: // write pwrite64 writev pwritev pwritev2
	case 3: case 33: case 292:                    // close dup2 dup3
	case 263: case 87: case 84: case 258: case 83: case 266: case 88:
	case 316: case 264: case 82: case 265: case 86: case 268: case 452: case 90:
	case 260: case 92: case 94: case 91: case 93:
		return 1;
	}
	return 0;
}

// raw_syscalls:sys_enter / sys_exit as raw tracepoints: one program for
// every syscall of the machine, which filters by number itself.
SEC("raw_tracepoint/sys_enter")
int raw_enter(struct bpf_raw_tracepoint_args *ctx)
{
	if (!file_syscall(ctx->args[1]) || other_task())
		return 0;
	return 0;
}

SEC("raw_tracepoint/sys_exit")
int raw_exit(struct bpf_raw_tracepoint_args *ctx)
{
	struct pt_regs *regs = (struct pt_regs *)ctx->args[0];
	if (!file_syscall(BPF_CORE_READ(regs, orig_ax)) || other_task())
		return 0;
	return 0;
}

// The same as BTF tracepoints (typed arguments, direct loads).
SEC("tp_btf/sys_enter")
int BPF_PROG(btf_enter, struct pt_regs *regs, long id)
{
	if (!file_syscall(id) || other_task())
		return 0;
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(btf_exit, struct pt_regs *regs, long ret)
{
	if (!file_syscall(regs->orig_ax) || other_task())
		return 0;
	return 0;
}
