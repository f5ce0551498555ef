// SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0
//
// Fileward's eBPF capture: syscall tracepoints and the sched_process_exec
// BTF tracepoint report file activity to user space through a BPF ring
// buffer. See docs/linux.md ("eBPF capture") for why these hooks (BPF LSM and
// fentry programs are refused on some kernels that run everything else), the
// minimum kernel, and what is filtered here.
//
// Paths are read in the kernel by walking dentries and mounts up to the
// root: a record carries the components leaf first, each NUL-terminated,
// which user space reverses. A path given to a syscall relative to a
// directory (dirfd or the working directory) is the directory's walked path
// plus the syscall's own string, which user space joins and cleans.
//
// Build: `make generate` (bpf2go with Debian's clang, CO-RE against the
// committed vmlinux.h). The objects are committed, so `go build` needs no
// clang.

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "GPL";

#define NAME_SZ 256
#define PATH_SZ 4096
#define DATA_MASK 8191
#define DATA_SZ (8192 + PATH_SZ)
#define MAX_DEPTH 64
#define MAX_MUTE 8
#define PC_SZ 256 // bytes of a directory's path kept by the path cache

#define S_IFMT 00170000
#define S_IFREG 0100000
#define AT_FDCWD -100
#define AT_REMOVEDIR 0x200
#define FMODE_READ 0x1
#define FMODE_WRITE 0x2
#define FMODE_CREATED (1 << 20)

// Actions (agent/capture/ebpf maps them to schema actions).
enum fw_action {
	FW_OPEN = 1,
	FW_CLOSE = 2,
	FW_MODIFY = 3,
	FW_CREATE = 4,
	FW_DELETE = 5,
	FW_RENAME = 6,
	FW_ATTRIB = 7,
	FW_EXEC = 8,
	FW_LINK = 9,
};

// Event selection bits (source.events).
#define EV_OPEN (1 << 0)
#define EV_CLOSE (1 << 1)
#define EV_CREATE (1 << 2)
#define EV_MODIFY (1 << 3)
#define EV_RENAME (1 << 4)
#define EV_DELETE (1 << 5)
#define EV_ATTRIB (1 << 6)
#define EV_EXEC (1 << 7)

#define ACC_READ 1
#define ACC_WRITE 2

// Counters (index into the per-CPU counters array).
enum fw_counter {
	C_RINGBUF_FULL = 0, // a record could not be written: the ring buffer was full
	C_MAP_FULL = 1,     // a file opened for writing could not be tracked: a modification may show as a close
	C_UNAGGREGATED = 2, // the aggregation map was full: the event went out on its own (nothing lost)
	C_MUTED = 3,        // events dropped in the kernel by path (agent's own files, exclude_paths)
	C_PATH_TRUNC = 4,   // paths cut at MAX_DEPTH components or the buffer's end
	C_AGGREGATED = 5,   // events folded into an aggregation entry
	C_STASH_FULL = 6,   // syscalls whose arguments could not be kept until their exit (event lost)
	C_PCACHE_HIT = 7,   // path walks that took a directory's path from the path cache
	C_MAX = 8,
};

#define F_TRUNCATED 1
#define F_AGG 2 // an aggregation entry holds this record's repeats
// A creation that is also its open (open(2) with O_CREAT that made the
// file): one record for both events, access in the header, F_AGG for the
// open. User space reports the creation, then the open.
#define F_OPEN 4

struct event_hdr {
	__u64 time_ns;  // bpf_ktime_get_boot_ns
	__u64 start_ns; // thread group leader's start_boottime
	__u64 cgroup_id;
	__u64 ino;
	__u64 key_dentry; // the aggregation key's file (0: not aggregated)
	__u64 key_mnt;
	__u32 dev;
	__u32 pid;
	__u32 tgid;
	__u32 ppid;
	__u32 uid;
	__u32 euid;
	__u32 gid;
	__u32 egid;
	__u32 mode;
	__u16 action;
	__u16 access;
	// data holds, in order: the components of path 1 (leaf first, each
	// NUL-terminated), its suffix (a syscall's relative path, NUL-terminated),
	// then the same for path 2. Lengths in bytes, NULs included.
	__u16 comp1;
	__u16 suffix1;
	__u16 comp2;
	__u16 suffix2;
	__u32 flags;
	__u8 comm[16];
};

struct event {
	struct event_hdr h;
	char data[DATA_SZ];
};

struct agg_key {
	__u64 dentry;
	__u64 mnt;
	__u64 epoch;
	__u64 start_ns;
	__u32 tgid;
	__u16 action;
	__u16 access;
};

struct agg_val {
	__u64 count; // repeats after the first, which went out as a record
	__u64 last_ns;
	__u32 muted;
	__u32 _pad;
};


struct stash {
	__u64 p1;
	__u64 p2;
	__s32 dfd1;
	__s32 dfd2;
	__u32 kind; // FW_* action
	__u32 flags;
};

// The path cache: a directory's walked path (its components and its
// ancestors', leaf first, as walk writes them), keyed by the walk's position
// (dentry and mount). With the path it keeps every dentry the walk visited
// and each one's name hash and length; a hit replays the walk over those
// (a load or two per step, no copy) and uses the path only if every
// dentry, name and mount crossing is still the same. So a rename or
// removal of the directory or of any ancestor, by any means, is never
// served stale (only a rename to a name with the same 32-bit hash and
// length under the same parent would be: docs/linux.md).
#define PC_CHAIN 24 // dentries a cached walk may visit

struct pc_key {
	__u64 d;
	__u64 mnt;
};

struct pc_val {
	__u16 len;
	__u8 muted; // one of the components is muted
	__u8 n;     // dentries visited
	__u32 _pad;
	__u64 dp[PC_CHAIN]; // the dentries visited
	__u64 hl[PC_CHAIN]; // their d_name.hash_len
	char data[PC_SZ];
};

// Set by the loader before verification.
const volatile __u32 self_tgid = 0;   // the agent: never reported
const volatile __u32 target_tgid = 0; // tests: report only this process (0: all)
const volatile __u32 event_mask = 0xff;
const volatile __u64 window_ns = 0; // aggregation window, 0 = none
// Muted directories and files by (kernel dev_t, inode): a path that passes
// through one of them is not reported.
const volatile __u32 mute_dev[MAX_MUTE] = {};
const volatile __u64 mute_ino[MAX_MUTE] = {};
const volatile __u32 mute_count = 0;
const volatile __u64 wakeup_bytes = 1 << 20; // see submit
const volatile __u32 path_cache = 1; // 0: every walk goes to the root (benchmarks compare)

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20); // resized by the loader
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct event);
} scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, C_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536); // resized by the loader
	__type(key, struct agg_key);
	__type(value, struct agg_val);
} agg SEC(".maps");

// Per CPU: the boot time until which aggregate does not try to insert
// into agg (it was full). A failing insert takes the bucket lock and then
// searches every CPU's free list; on a burst of new files the map stays
// full until the read loop's next sweep, and every event paid for that.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} aggfull SEC(".maps");

#define AGG_FULL_BACKOFF_NS 2000000 // 2 ms between inserts into a full map, per CPU

// Per CPU: a direct-mapped set of the aggregation keys seen lately (a
// 64-bit hash of each). The first event of a key on a CPU goes out as a
// record of its own without touching agg: most files are opened and closed
// once (a build, an unpack, a backup), and an insert (bucket lock, free
// list) cost more than the rest of the record. From the second event on,
// agg counts the repeats. Counts stay exact: an event is either a record
// or counted in an entry, whatever the set forgets.
#define SEEN_SLOTS 2048
struct seen_set {
	__u64 h[SEEN_SLOTS];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct seen_set);
} seen SEC(".maps");

// Open files (struct file addresses) of regular files written since they
// were opened: the first write adds the file, its last close deletes it (and
// learns from the delete whether it was there). So a read-only open costs
// no map operation, a written file three (lookup and insert at its first
// write, delete at its close). LRU: a file whose last close was never seen
// (its process exited, or closed it by dup2 onto another) is forgotten
// eventually.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536); // resized by the loader
	__type(key, __u64);
	__type(value, __u8);
} wfiles SEC(".maps");

// struct file before Linux 6.13 counted references in f_count.
struct file___old {
	atomic_long_t f_count;
} __attribute__((preserve_access_index));

// file_refs is the number of references to f (descriptors, mmaps, ...).
static __always_inline long file_refs(struct file *f)
{
	if (bpf_core_field_exists(f->f_ref)) {
		long c = BPF_CORE_READ(f, f_ref.refcnt.counter);
		return c + 1; // file_ref_t counts from 0 for one reference
	}
	struct file___old *o = (void *)f;
	return BPF_CORE_READ(o, f_count.counter);
}

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct pc_key);
	__type(value, struct pc_val);
} pcache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pc_val);
} pcscratch SEC(".maps");

// Syscall arguments from entry to exit, in the thread's own task storage
// (a pointer in the task, no hashing and no bucket lock: a hash map keyed by
// thread id cost an update, a lookup and a delete per syscall). kind 0 is
// an empty slot.
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct stash);
} stashes SEC(".maps");

// Direct loads instead of bpf_probe_read_kernel calls: a kernel address
// cast to a read-only BTF pointer (bpf_rdonly_cast, Linux 6.2) is read with
// fault-tolerant loads, each a single instruction, with CO-RE offsets.
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;
#define CAST(ptr, type) ((type *)bpf_rdonly_cast((const void *)(ptr), bpf_core_type_id_kernel(type)))

static __always_inline void count(__u32 idx, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);
	if (v)
		__sync_fetch_and_add(v, n);
}

static __always_inline bool pseudo_fs(struct super_block *sb)
{
	unsigned long m = CAST(sb, struct super_block)->s_magic;
	switch (m) {
	case 0x9fa0:     // proc
	case 0x62656572: // sysfs
	case 0x27e0eb:   // cgroup
	case 0x63677270: // cgroup2
	case 0x64626720: // debugfs
	case 0x74726163: // tracefs
	case 0x73636673: // securityfs
	case 0xcafe4a11: // bpf
	case 0x1cd1:     // devpts
	case 0x50495045: // pipefs
	case 0x534f434b: // sockfs
	case 0x6e736673: // nsfs
	case 0x09041934: // anon_inode
	case 0xf97cff8c: // selinuxfs
	case 0x65735543: // fusectl
	case 0x62656570: // configfs
	case 0xde5e81e4: // efivarfs
	case 0x6165676c: // pstore
	case 0x19800202: // mqueue
		return true;
	}
	return false;
}

static __always_inline bool skip_task(__u32 tgid)
{
	if (self_tgid && tgid == self_tgid)
		return true;
	if (target_tgid && tgid != target_tgid)
		return true;
	return false;
}

// new_event fills the per-CPU scratch record's header for action at time
// now (0: read the clock here).
static __always_inline struct event *new_event(__u16 action, __u64 now)
{
	__u32 zero = 0;
	struct event *e = bpf_map_lookup_elem(&scratch, &zero);
	if (!e)
		return NULL;
	struct task_struct *t = bpf_get_current_task_btf();
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	e->h.time_ns = now ? now : bpf_ktime_get_boot_ns();
	e->h.pid = (__u32)pid_tgid;
	e->h.tgid = pid_tgid >> 32;
	e->h.ppid = t->real_parent->tgid;
	e->h.start_ns = t->group_leader->start_boottime;
	const struct cred *c = t->cred;
	e->h.uid = c->uid.val;
	e->h.euid = c->euid.val;
	e->h.gid = c->gid.val;
	e->h.egid = c->egid.val;
	e->h.cgroup_id = bpf_get_current_cgroup_id();
	e->h.action = action;
	e->h.access = 0;
	e->h.comp1 = 0;
	e->h.suffix1 = 0;
	e->h.comp2 = 0;
	e->h.suffix2 = 0;
	e->h.flags = 0;
	e->h.ino = 0;
	e->h.dev = 0;
	e->h.mode = 0;
	e->h.key_dentry = 0;
	e->h.key_mnt = 0;
	bpf_get_current_comm(&e->h.comm, sizeof(e->h.comm));
	return e;
}

static __always_inline void set_inode(struct event *e, struct inode *ino)
{
	if (!ino)
		return;
	struct inode *i = CAST(ino, struct inode);
	e->h.ino = i->i_ino;
	e->h.dev = i->i_sb->s_dev;
	e->h.mode = i->i_mode;
}

static __always_inline bool is_muted_inode(struct inode *ino)
{
	if (mute_count == 0 || !ino)
		return false;
	struct inode *in = CAST(ino, struct inode);
	__u64 i = in->i_ino;
	__u32 dev = in->i_sb->s_dev;
#pragma unroll
	for (int k = 0; k < MAX_MUTE; k++) {
		if (k < mute_count && mute_ino[k] == i && mute_dev[k] == dev)
			return true;
	}
	return false;
}

struct walk_ctx {
	struct dentry *d;
	struct mount *mnt;
	struct dentry *mroot;
	__u32 off;
	int muted;
	int done;
	int root; // the walk reached the root (a complete path)
	int rec;  // record the dentries visited in pcscratch
	__u32 nrec;
};

// step is one step up from c->d: a component, or a mount crossing. It
// returns 1 to stop.
static __always_inline long step(struct walk_ctx *c)
{
	__u32 zero = 0;
	struct event *e = bpf_map_lookup_elem(&scratch, &zero);
	if (!e)
		return 1;
	struct dentry *d = CAST(c->d, struct dentry);
	if (c->rec) {
		__u32 i = c->nrec;
		struct pc_val *pv = bpf_map_lookup_elem(&pcscratch, &zero);
		if (i < PC_CHAIN && pv) {
			pv->dp[i] = (__u64)c->d;
			pv->hl[i] = d->d_name.hash_len;
		}
		c->nrec = i + 1;
	}
	struct dentry *parent = d->d_parent;
	if (d == c->mroot || d == parent) {
		if (d != c->mroot) {
			c->done = 1; // the root of a filesystem that is not mounted here
			c->root = 1;
			return 1;
		}
		// (Locals: inside BPF_CORE_READ, c->mnt would be relocated as a
		// kernel type too.)
		struct mount *mnt = CAST(c->mnt, struct mount);
		struct mount *mp = mnt->mnt_parent;
		if (mp == mnt) {
			c->done = 1; // the root
			c->root = 1;
			return 1;
		}
		c->d = mnt->mnt_mountpoint;
		c->mnt = mp;
		c->mroot = mp->mnt.mnt_root;
		return 0;
	}
	if (is_muted_inode(d->d_inode))
		c->muted = 1;
	__u32 o = c->off;
	if (o > DATA_MASK - NAME_SZ) {
		e->h.flags |= F_TRUNCATED;
		c->done = 1;
		return 1;
	}
	const unsigned char *name = d->d_name.name;
	int n = bpf_probe_read_kernel_str(e->data + (o & DATA_MASK), NAME_SZ, name);
	if (n <= 0) {
		c->done = 1;
		return 1;
	}
	c->off = o + n;
	c->d = parent;
	return 0;
}

static long walk_step(__u32 i, void *vc)
{
	return step(vc);
}

struct replay_ctx {
	struct dentry *d;
	struct mount *m;
	struct dentry *mr;
	struct pc_val *v;
	__u32 n;
	int ok;
};

// replay_step is step over a cached walk, without the names: the i-th
// dentry visited and its name must be the cached ones. It returns 1 to stop;
// r->ok says whether the whole cached walk still holds.
static long replay_step(__u32 i, void *vc)
{
	struct replay_ctx *r = vc;
	struct pc_val *v = r->v;
	if (!v || i >= r->n || i >= PC_CHAIN)
		return 1;
	// (A mask the verifier sees: clang would use another copy of i than
	// the one compared.)
	__u32 j = i;
	barrier_var(j);
	j &= 31;
	struct dentry *d = r->d;
	struct dentry *dc = CAST(d, struct dentry);
	if (v->dp[j] != (__u64)d || v->hl[j] != dc->d_name.hash_len)
		return 1;
	struct dentry *parent = dc->d_parent;
	if (d != r->mr && d != parent) {
		r->d = parent;
		return 0;
	}
	if (d != r->mr) {
		r->ok = i + 1 == r->n;
		return 1;
	}
	struct mount *m = r->m;
	struct mount *mc = CAST(m, struct mount);
	struct mount *mp = mc->mnt_parent;
	if (mp == m) {
		r->ok = i + 1 == r->n;
		return 1;
	}
	r->d = mc->mnt_mountpoint;
	r->m = mp;
	r->mr = mp->mnt.mnt_root;
	return 0;
}

// walk_path writes the components of (d, vm) leaf first into e->data at
// *off (bpf_loop: verified once, whatever the depth). It returns 1 when one
// of them is a muted directory or file, else 0. After the leaf, the rest
// (the directory's path) comes from the path cache when it holds it, and
// goes into it otherwise. A global function: the verifier checks it once,
// not at each of the many places it is inlined into (fw_close went past a
// million instructions with the path cache inlined).
// (A global function takes no kernel pointers: the walk's start comes in
// memory, as numbers.)
struct walk_args {
	__u64 d;
	__u64 vm;
	__u32 off;
	__u32 _pad;
};

__noinline int walk_path(struct event *e, struct walk_args *a)
{
	if (!e || !a)
		return 0;
	struct dentry *d = (struct dentry *)a->d;
	struct vfsmount *vm = (struct vfsmount *)a->vm;
	__u32 *off = &a->off;
	struct walk_ctx c = {};
	c.d = d;
	c.mnt = (void *)vm - bpf_core_field_offset(struct mount, mnt);
	c.mroot = CAST(vm, struct vfsmount)->mnt_root;
	c.off = *off;
	step(&c);
	if (!c.done && !path_cache) {
		bpf_loop(MAX_DEPTH, walk_step, &c, 0);
	} else if (!c.done) {
		struct pc_key k = {.d = (__u64)c.d, .mnt = (__u64)c.mnt};
		struct pc_val *v = bpf_map_lookup_elem(&pcache, &k);
		__u32 o = c.off;
		int ok = 0;
		if (v && o <= DATA_MASK - PC_SZ) {
			// Replay the walk over the cached dentries (bpf_loop: verified
			// once).
			struct replay_ctx r = {.d = c.d, .m = c.mnt, .mr = c.mroot, .v = v, .n = v->n};
			bpf_loop(PC_CHAIN, replay_step, &r, 0);
			ok = r.ok;
		}
		if (ok && v) {
			__u32 len = v->len;
			// (The mask after the barrier: clang would drop it knowing
			// len < PC_SZ, and the verifier needs to see it.)
			barrier_var(len);
			len &= PC_SZ - 1;
			bpf_probe_read_kernel(e->data + (o & DATA_MASK), len, v->data);
			c.off = o + len;
			if (v->muted)
				c.muted = 1;
			c.done = 1;
			count(C_PCACHE_HIT, 1);
		} else {
			int leaf_muted = c.muted;
			c.muted = 0;
			c.rec = 1;
			bpf_loop(MAX_DEPTH, walk_step, &c, 0);
			__u32 len = c.off - o;
			__u32 zero = 0;
			struct pc_val *nv;
			if (c.root && c.nrec <= PC_CHAIN && len < PC_SZ && !(e->h.flags & F_TRUNCATED) &&
			    (nv = bpf_map_lookup_elem(&pcscratch, &zero))) {
				nv->n = c.nrec;
				nv->len = len;
				nv->muted = c.muted;
				barrier_var(len);
				len &= PC_SZ - 1;
				bpf_probe_read_kernel(nv->data, len, e->data + (o & DATA_MASK));
				bpf_map_update_elem(&pcache, &k, nv, BPF_ANY);
			}
			c.muted |= leaf_muted;
		}
	}
	if (!c.done) {
		e->h.flags |= F_TRUNCATED;
		count(C_PATH_TRUNC, 1);
	}
	*off = c.off;
	return c.muted;
}

static __always_inline int walk(struct event *e, __u32 *off, struct dentry *d, struct vfsmount *vm)
{
	struct walk_args a = {.d = (__u64)d, .vm = (__u64)vm, .off = *off};
	int muted = walk_path(e, &a);
	*off = a.off;
	return muted;
}

static __always_inline struct file *fd_file(struct task_struct *t, int fd)
{
	if (fd < 0)
		return NULL;
	// Direct loads (one instruction each) for all but the array slot: this
	// runs for every write(2) on the machine.
	struct files_struct *files = CAST(t, struct task_struct)->files;
	struct fdtable *fdt = CAST(files, struct files_struct)->fdt;
	struct fdtable *fdtc = CAST(fdt, struct fdtable);
	unsigned int max = fdtc->max_fds;
	if ((unsigned int)fd >= max)
		return NULL;
	struct file **fda = fdtc->fd;
	struct file *f = NULL;
	bpf_probe_read_kernel(&f, sizeof(f), &fda[fd]);
	return f;
}

// dir_path writes path slot (1 or 2): the walked directory (dfd or the
// working directory) unless the user path is absolute, then the user path.
static __always_inline int dir_path(struct event *e, __u32 *off, int slot, int dfd, const char *upath)
{
	char first = 0;
	bpf_probe_read_user(&first, 1, upath);
	__u32 start = *off;
	int muted = 0;
	if (first != '/') {
		struct task_struct *t = bpf_get_current_task_btf();
		struct dentry *d;
		struct vfsmount *vm;
		if (dfd == AT_FDCWD) {
			d = BPF_CORE_READ(t, fs, pwd.dentry);
			vm = BPF_CORE_READ(t, fs, pwd.mnt);
		} else {
			struct file *f = fd_file(t, dfd);
			if (!f)
				return -1;
			d = BPF_CORE_READ(f, f_path.dentry);
			vm = BPF_CORE_READ(f, f_path.mnt);
		}
		muted = walk(e, off, d, vm);
	}
	__u32 mid = *off;
	if (mid > DATA_MASK - PATH_SZ) {
		e->h.flags |= F_TRUNCATED;
		return -1;
	}
	int n = bpf_probe_read_user_str(e->data + (mid & DATA_MASK), PATH_SZ, upath);
	if (n <= 0)
		return -1;
	*off = mid + n;
	if (slot == 1) {
		e->h.comp1 = mid - start;
		e->h.suffix1 = n;
	} else {
		e->h.comp2 = mid - start;
		e->h.suffix2 = n;
	}
	return muted;
}

// submit writes the record to the ring buffer without waking the reader,
// except when the record takes the unread data past wakeup_bytes: the
// reader polls every few milliseconds and drains what is there. (With the
// default adaptive wake-up, a reader that keeps up is woken for nearly
// every record: an irq_work and a cross-CPU wake-up charged to the process
// that made the event.)
static __always_inline int submit(struct event *e, __u32 off)
{
	__u64 size = sizeof(e->h) + (off & DATA_MASK);
	if (size > sizeof(*e))
		size = sizeof(*e);
	__u64 avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	__u64 flags = BPF_RB_NO_WAKEUP;
	if (wakeup_bytes == 0)
		flags = 0; // the kernel's adaptive wake-up (benchmarks compare)
	else if (avail < wakeup_bytes && avail + size >= wakeup_bytes)
		flags = BPF_RB_FORCE_WAKEUP;
	if (bpf_ringbuf_output(&events, e, size, flags) != 0) {
		count(C_RINGBUF_FULL, 1);
		return -1;
	}
	return 0;
}

// aggregate counts a repeat into k's aggregation entry, or starts the
// entry. It returns AGG_NEW when the entry is new (the record goes out with
// F_AGG), AGG_REPEAT when the event was counted into an entry (or dropped
// as muted), and AGG_NONE when the record goes out on its own: no
// aggregation, the first sighting of k on this CPU (see seen), or a full
// map. A key that passes the seen set is likely a repeat, so the lookup
// comes first; the insert only when it finds nothing.
#define AGG_NONE 0
#define AGG_NEW 1
#define AGG_REPEAT 2

static __always_inline int count_repeat(struct agg_val *v, __u64 now)
{
	if (v->muted)
		return AGG_REPEAT;
	__sync_fetch_and_add(&v->count, 1);
	v->last_ns = now;
	count(C_AGGREGATED, 1);
	return AGG_REPEAT;
}

// ino is the file's inode number (the set's hash takes scalars: the key's
// dentry and mount are pointers to the verifier).
static __always_inline int aggregate(struct agg_key *k, __u64 now, __u64 ino)
{
	if (window_ns == 0)
		return AGG_NONE;
	k->epoch = now / window_ns;
	__u32 zero = 0;
	struct seen_set *ss = bpf_map_lookup_elem(&seen, &zero);
	if (ss) {
		__u64 h = ino ^ (k->start_ns * 0xC2B2AE3D27D4EB4FULL) ^ ((__u64)k->tgid << 32) ^
			  ((__u64)k->action << 16) ^ k->access ^ (k->epoch * 0x165667B19E3779F9ULL);
		h *= 0x9E3779B97F4A7C15ULL;
		h |= 1;
		__u32 slot = (h >> 40) & (SEEN_SLOTS - 1);
		if (ss->h[slot] != h) {
			ss->h[slot] = h;
			return AGG_NONE; // the first on this CPU lately: a record, no map operation
		}
	}
	struct agg_val *v = bpf_map_lookup_elem(&agg, k);
	if (v)
		return count_repeat(v, now);
	__u64 *full = bpf_map_lookup_elem(&aggfull, &zero);
	if (full && now < *full) {
		count(C_UNAGGREGATED, 1);
		return AGG_NONE; // full a moment ago: not tried again yet
	}
	struct agg_val nv = {.count = 0, .last_ns = now, .muted = 0};
	long err = bpf_map_update_elem(&agg, k, &nv, BPF_NOEXIST);
	if (err == 0)
		return AGG_NEW;
	if (err == -17 /* EEXIST: another CPU was first */) {
		v = bpf_map_lookup_elem(&agg, k);
		if (v)
			return count_repeat(v, now);
		return AGG_NONE; // and it is gone already (the sweep, or its record was lost)
	}
	// Full: only lookups (repeats of the entries there) until the backoff
	// is over.
	if (full)
		*full = now + AGG_FULL_BACKOFF_NS;
	count(C_UNAGGREGATED, 1);
	return AGG_NONE;
}

// file_event reports an open, close or modification of the regular file f.
// It returns 1 if the file is muted.
static __always_inline int file_event(struct file *f, __u16 action, __u16 access, bool created)
{
	struct file *fc = CAST(f, struct file);
	struct inode *ino = fc->f_inode;
	struct agg_key k = {};
	__u64 now = bpf_ktime_get_boot_ns();
	struct task_struct *t = bpf_get_current_task_btf();
	k.dentry = (__u64)fc->f_path.dentry;
	k.mnt = (__u64)fc->f_path.mnt;
	k.start_ns = t->group_leader->start_boottime;
	k.tgid = bpf_get_current_pid_tgid() >> 32;
	k.action = action;
	k.access = access;
	int ag = aggregate(&k, now, CAST(ino, struct inode)->i_ino);
	if (ag == AGG_REPEAT && !created)
		return 0;
	bool held = ag == AGG_NEW;
	__u32 events = 1;
	struct event *e;
	if (created && ag == AGG_REPEAT) {
		// (An open of this file by this process was already counted in
		// this window: the creation goes out alone.)
		e = new_event(FW_CREATE, now);
	} else if (created) {
		e = new_event(FW_CREATE, now);
		events = 2;
	} else {
		e = new_event(action, now);
	}
	if (!e) {
		if (held)
			bpf_map_delete_elem(&agg, &k);
		return 0;
	}
	if (events == 2 || !created) {
		e->h.access = access;
		e->h.key_dentry = k.dentry;
		e->h.key_mnt = k.mnt;
	}
	if (events == 2)
		e->h.flags |= F_OPEN;
	set_inode(e, ino);
	__u32 off = 0;
	int muted = walk(e, &off, (struct dentry *)k.dentry, (struct vfsmount *)k.mnt);
	e->h.comp1 = off;
	if (muted) {
		count(C_MUTED, events);
		// The entry drops the file's repeats in this window (user space
		// deletes a muted entry without reporting it, and whatever another
		// CPU counted into it meanwhile).
		if (held) {
			struct agg_val *v = bpf_map_lookup_elem(&agg, &k);
			if (v)
				v->muted = 1;
		}
		return 1;
	}
	// The entry came first, so that user space keeps a record's fields only
	// when an entry may count its repeats (the F_AGG flag).
	if (held)
		e->h.flags |= F_AGG;
	if (submit(e, off) != 0) {
		// The record is lost (submit counted one event): so is the open it
		// carried, and the repeats another CPU may already have counted
		// into its entry.
		if (events == 2)
			count(C_RINGBUF_FULL, 1);
		if (held) {
			struct agg_val *v = bpf_map_lookup_elem(&agg, &k);
			if (v)
				count(C_RINGBUF_FULL, v->count);
			bpf_map_delete_elem(&agg, &k);
		}
	}
	return 0;
}

// regular says whether f is a regular file on a real filesystem.
static __always_inline bool is_regular(struct file *f)
{
	struct inode *ino = CAST(f, struct file)->f_inode;
	umode_t mode = ino->i_mode;
	if ((mode & S_IFMT) != S_IFREG)
		return false;
	return !pseudo_fs(ino->i_sb);
}

// Opens: on exit, from the new descriptor.
SEC("tracepoint/syscalls/sys_exit_openat")
int fw_open_exit(struct trace_event_raw_sys_exit *ctx)
{
	long fd = ctx->ret;
	if (fd < 0)
		return 0;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (skip_task(tgid))
		return 0;
	struct task_struct *t = bpf_get_current_task_btf();
	struct file *f = fd_file(t, fd);
	if (!f || !is_regular(f))
		return 0;
	fmode_t fm = CAST(f, struct file)->f_mode;
	bool created = (fm & FMODE_CREATED) && (event_mask & EV_CREATE);
	if (created && !(event_mask & EV_OPEN)) {
		struct event *e = new_event(FW_CREATE, 0);
		if (e) {
			set_inode(e, BPF_CORE_READ(f, f_inode));
			__u32 off = 0;
			int muted = walk(e, &off, BPF_CORE_READ(f, f_path.dentry), BPF_CORE_READ(f, f_path.mnt));
			e->h.comp1 = off;
			if (muted)
				count(C_MUTED, 1);
			else
				submit(e, off);
		}
		return 0;
	}
	if (event_mask & EV_OPEN) {
		__u16 acc = 0;
		if (fm & FMODE_READ)
			acc |= ACC_READ;
		if (fm & FMODE_WRITE)
			acc |= ACC_WRITE;
		// A creating open is one record (F_OPEN): one walk and one copy
		// into the ring buffer for the two events.
		file_event(f, FW_OPEN, acc, created);
	}
	return 0;
}

// Writes: mark a regular file written (a lookup; an insert at its first
// write). Pipes, sockets and terminals stop at the inode's mode.
static __always_inline int on_write(struct trace_event_raw_sys_enter *ctx)
{
	if (!(event_mask & EV_MODIFY))
		return 0;
	if (skip_task(bpf_get_current_pid_tgid() >> 32))
		return 0;
	struct file *f = fd_file(bpf_get_current_task_btf(), ctx->args[0]);
	if (!f || !(CAST(f, struct file)->f_mode & FMODE_WRITE) || !is_regular(f))
		return 0;
	__u64 key = (__u64)f;
	if (bpf_map_lookup_elem(&wfiles, &key))
		return 0;
	__u8 one = 1;
	long err = bpf_map_update_elem(&wfiles, &key, &one, BPF_NOEXIST);
	if (err && err != -17 /* EEXIST: another thread's write was first */)
		count(C_MAP_FULL, 1);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_write")
int fw_write(struct trace_event_raw_sys_enter *ctx) { return on_write(ctx); }

// last_close reports the close of descriptor fd when it holds the file's
// last reference (as fanotify reports a close at the last release): a
// modification when the file was written, else a close.
static __always_inline int last_close(int fd)
{
	// A skipped process's writes never went into wfiles (on_write skips
	// it first), so its closes need no map operation at all.
	if (skip_task(bpf_get_current_pid_tgid() >> 32))
		return 0;
	struct file *f = fd_file(bpf_get_current_task_btf(), fd);
	if (!f)
		return 0;
	if (file_refs(f) > 1)
		return 0; // another descriptor (dup, fork) still holds it
	// Only a file open for writing can be in wfiles: the delete says
	// whether it was (written) or not.
	bool wrote = false;
	if (CAST(f, struct file)->f_mode & FMODE_WRITE) {
		__u64 key = (__u64)f;
		wrote = bpf_map_delete_elem(&wfiles, &key) == 0;
	}
	__u16 action;
	if (wrote && (event_mask & EV_MODIFY))
		action = FW_MODIFY;
	else if (event_mask & EV_CLOSE)
		action = FW_CLOSE;
	else
		return 0;
	if (!is_regular(f))
		return 0;
	file_event(f, action, 0, false);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_close")
int fw_close(struct trace_event_raw_sys_enter *ctx) { return last_close(ctx->args[0]); }

// dup2 and dup3 close what newfd held (a shell restoring its stdout after
// `echo > file`).
SEC("tracepoint/syscalls/sys_enter_dup2")
int fw_dup2(struct trace_event_raw_sys_enter *ctx)
{
	if (ctx->args[0] == ctx->args[1])
		return 0;
	return last_close(ctx->args[1]);
}

// Entry-and-exit syscalls: the entry keeps the arguments, the exit reports
// the event when the syscall succeeded.
static __always_inline int keep(__u32 kind, __u32 bit, int dfd1, __u64 p1, int dfd2, __u64 p2, __u32 flags)
{
	if (!(event_mask & bit))
		return 0;
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	if (skip_task(pid_tgid >> 32))
		return 0;
	struct stash *s = bpf_task_storage_get(&stashes, bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!s) {
		count(C_STASH_FULL, 1);
		return 0;
	}
	s->p1 = p1;
	s->p2 = p2;
	s->dfd1 = dfd1;
	s->dfd2 = dfd2;
	s->flags = flags;
	s->kind = kind;
	return 0;
}

#define A(i) (ctx->args[i])

SEC("tracepoint/syscalls/sys_enter_unlinkat")
int fw_unlinkat(struct trace_event_raw_sys_enter *ctx) { return keep(FW_DELETE, EV_DELETE, A(0), A(1), 0, 0, A(2)); }
SEC("tracepoint/syscalls/sys_enter_unlink")
int fw_unlink(struct trace_event_raw_sys_enter *ctx) { return keep(FW_DELETE, EV_DELETE, AT_FDCWD, A(0), 0, 0, 0); }
SEC("tracepoint/syscalls/sys_enter_rmdir")
int fw_rmdir(struct trace_event_raw_sys_enter *ctx) { return keep(FW_DELETE, EV_DELETE, AT_FDCWD, A(0), 0, 0, AT_REMOVEDIR); }
SEC("tracepoint/syscalls/sys_enter_mkdirat")
int fw_mkdirat(struct trace_event_raw_sys_enter *ctx) { return keep(FW_CREATE, EV_CREATE, A(0), A(1), 0, 0, 0); }
SEC("tracepoint/syscalls/sys_enter_mkdir")
int fw_mkdir(struct trace_event_raw_sys_enter *ctx) { return keep(FW_CREATE, EV_CREATE, AT_FDCWD, A(0), 0, 0, 0); }
SEC("tracepoint/syscalls/sys_enter_symlinkat")
int fw_symlinkat(struct trace_event_raw_sys_enter *ctx) { return keep(FW_CREATE, EV_CREATE, A(1), A(2), 0, 0, 0); }
SEC("tracepoint/syscalls/sys_enter_symlink")
int fw_symlink(struct trace_event_raw_sys_enter *ctx) { return keep(FW_CREATE, EV_CREATE, AT_FDCWD, A(1), 0, 0, 0); }
// Rename and link: path 1 is the new name, path 2 the old one.
SEC("tracepoint/syscalls/sys_enter_renameat2")
int fw_renameat2(struct trace_event_raw_sys_enter *ctx) { return keep(FW_RENAME, EV_RENAME, A(2), A(3), A(0), A(1), 0); }
SEC("tracepoint/syscalls/sys_enter_renameat")
int fw_renameat(struct trace_event_raw_sys_enter *ctx) { return keep(FW_RENAME, EV_RENAME, A(2), A(3), A(0), A(1), 0); }
SEC("tracepoint/syscalls/sys_enter_rename")
int fw_rename(struct trace_event_raw_sys_enter *ctx) { return keep(FW_RENAME, EV_RENAME, AT_FDCWD, A(1), AT_FDCWD, A(0), 0); }
SEC("tracepoint/syscalls/sys_enter_linkat")
int fw_linkat(struct trace_event_raw_sys_enter *ctx) { return keep(FW_LINK, EV_CREATE, A(2), A(3), A(0), A(1), 0); }
SEC("tracepoint/syscalls/sys_enter_link")
int fw_link(struct trace_event_raw_sys_enter *ctx) { return keep(FW_LINK, EV_CREATE, AT_FDCWD, A(1), AT_FDCWD, A(0), 0); }
SEC("tracepoint/syscalls/sys_enter_fchmodat")
int fw_fchmodat(struct trace_event_raw_sys_enter *ctx) { return keep(FW_ATTRIB, EV_ATTRIB, A(0), A(1), 0, 0, 0); }
SEC("tracepoint/syscalls/sys_enter_chmod")
int fw_chmod(struct trace_event_raw_sys_enter *ctx) { return keep(FW_ATTRIB, EV_ATTRIB, AT_FDCWD, A(0), 0, 0, 0); }
SEC("tracepoint/syscalls/sys_enter_fchownat")
int fw_fchownat(struct trace_event_raw_sys_enter *ctx) { return keep(FW_ATTRIB, EV_ATTRIB, A(0), A(1), 0, 0, 0); }
SEC("tracepoint/syscalls/sys_enter_chown")
int fw_chown(struct trace_event_raw_sys_enter *ctx) { return keep(FW_ATTRIB, EV_ATTRIB, AT_FDCWD, A(0), 0, 0, 0); }
SEC("tracepoint/syscalls/sys_enter_lchown")
int fw_lchown(struct trace_event_raw_sys_enter *ctx) { return keep(FW_ATTRIB, EV_ATTRIB, AT_FDCWD, A(0), 0, 0, 0); }

// The exit of every syscall above.
SEC("tracepoint/syscalls/sys_exit_unlinkat")
int fw_path_exit(struct trace_event_raw_sys_exit *ctx)
{
	struct stash *sp = bpf_task_storage_get(&stashes, bpf_get_current_task_btf(), 0, 0);
	if (!sp || !sp->kind)
		return 0;
	struct stash s = *sp;
	sp->kind = 0;
	if (ctx->ret != 0)
		return 0;
	struct event *e = new_event(s.kind, 0);
	if (!e)
		return 0;
	__u32 off = 0;
	int m = dir_path(e, &off, 1, s.dfd1, (const char *)s.p1);
	if (m < 0)
		return 0;
	if (s.p2) {
		int m2 = dir_path(e, &off, 2, s.dfd2, (const char *)s.p2);
		if (m2 < 0)
			return 0;
		m |= m2;
	}
	if (m) {
		count(C_MUTED, 1);
		return 0;
	}
	submit(e, off);
	return 0;
}

// fchmod, fchown: the file is the descriptor's.
static __always_inline int fd_attrib(int fd)
{
	if (!(event_mask & EV_ATTRIB))
		return 0;
	if (skip_task(bpf_get_current_pid_tgid() >> 32))
		return 0;
	struct file *f = fd_file(bpf_get_current_task_btf(), fd);
	if (!f)
		return 0;
	struct dentry *d = BPF_CORE_READ(f, f_path.dentry);
	if (pseudo_fs(BPF_CORE_READ(d, d_sb)))
		return 0;
	struct event *e = new_event(FW_ATTRIB, 0);
	if (!e)
		return 0;
	set_inode(e, BPF_CORE_READ(f, f_inode));
	__u32 off = 0;
	int muted = walk(e, &off, d, BPF_CORE_READ(f, f_path.mnt));
	e->h.comp1 = off;
	if (muted) {
		count(C_MUTED, 1);
		return 0;
	}
	submit(e, off);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_fchmod")
int fw_fchmod(struct trace_event_raw_sys_enter *ctx) { return fd_attrib(A(0)); }
SEC("tracepoint/syscalls/sys_enter_fchown")
int fw_fchown(struct trace_event_raw_sys_enter *ctx) { return fd_attrib(A(0)); }

// Exec: after the new image is in place, from the new process itself, with
// the path of the file it runs.
SEC("tp_btf/sched_process_exec")
int BPF_PROG(fw_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	if (!(event_mask & EV_EXEC))
		return 0;
	if (skip_task(bpf_get_current_pid_tgid() >> 32))
		return 0;
	struct file *f = BPF_CORE_READ(bprm, file);
	if (!f)
		return 0;
	struct event *e = new_event(FW_EXEC, 0);
	if (!e)
		return 0;
	e->h.access = ACC_READ;
	set_inode(e, BPF_CORE_READ(f, f_inode));
	__u32 off = 0;
	int muted = walk(e, &off, BPF_CORE_READ(f, f_path.dentry), BPF_CORE_READ(f, f_path.mnt));
	e->h.comp1 = off;
	if (muted) {
		count(C_MUTED, 1);
		return 0;
	}
	submit(e, off);
	return 0;
}
