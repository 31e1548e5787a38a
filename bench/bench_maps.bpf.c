// A small object: one map with a 64-byte struct value (the typed-view benchmarks read it through
// its BTF) and one program (open + load + close of a small object).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct rec {
	__u64 a;
	__u64 b;
	__u32 c;
	__u32 d;
	__u64 e[5];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct rec);
} typed SEC(".maps");

SEC("syscall")
int touch(void *ctx)
{
	__u32 key = 0;
	struct rec *r = bpf_map_lookup_elem(&typed, &key);

	if (r)
		r->a++;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
