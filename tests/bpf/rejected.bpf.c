// A program the verifier must reject: it dereferences a hash map lookup result without a
// NULL check (recent kernels prove constant-key ARRAY lookups non-NULL, so a HASH map it is).  Many preceding instructions make the verifier log long (to test it is kept whole).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} values SEC(".maps");

SEC("tp/syscalls/sys_enter_getpid")
int good(void *ctx)
{
	return 0;
}

SEC("tp/syscalls/sys_enter_getppid")
int unchecked_lookup(void *ctx)
{
	__u32 key = 0;
	__u64 *v;
	__u64 acc = bpf_ktime_get_ns();

#pragma unroll
	for (int i = 0; i < 200; i++)
		acc = acc * 31 + (acc >> 7) + i;
	key = acc & 0;
	v = bpf_map_lookup_elem(&values, &key);
	*v += acc;   /* R0 may be NULL: rejected */
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
