// Fills a hash map from the kernel side for the dump tests: each run of `fill` (an XDP
// program run with BPF_PROG_TEST_RUN, `repeat` times) stores one entry, key k = the run's
// number times 7919, value k * 3 + 1 (u64) in `big` and per CPU in `big_percpu`.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u64);
} big SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u64);
} big_percpu SEC(".maps");

__u32 runs;

SEC("xdp")
int fill(struct xdp_md *ctx)
{
	__u32 key = runs++ * 7919; /* the runs of one test run are sequential */
	__u64 value = (__u64)key * 3 + 1;

	bpf_map_update_elem(&big, &key, &value, BPF_ANY);
	bpf_map_update_elem(&big_percpu, &key, &value, BPF_ANY);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
