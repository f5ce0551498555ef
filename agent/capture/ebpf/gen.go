package ebpf

// The BPF objects (fileward_bpfel.o) and their Go bindings are generated from
// bpf/fileward.bpf.c with Debian's clang against the committed bpf/vmlinux.h,
// and committed: `go build` needs no clang. `make generate` runs this, and
// make test fails when the committed files differ from a fresh build.
//
//go:generate go tool bpf2go -cc clang -strip llvm-strip -cflags "-O2 -g -Wall -Werror" -target bpfel -tags linux -type event_hdr -type agg_key -type agg_val fileward bpf/fileward.bpf.c -- -Ibpf
