// A histogram the map memory view and the NumPy export read: one XDP program, run with
// BPF_PROG_TEST_RUN, takes a slot number from the first 4 bytes of its packet and counts it in
// every kind of map those readers cover.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define SLOTS 1024

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} hist SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} plain SEC(".maps");

struct slot_stat {
	__u64 count;
	__u32 last;
	__u16 cpu;
	__u8 flag;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SLOTS);
	__type(key, __u32);
	__type(value, struct slot_stat);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, SLOTS);
	__type(key, __u32);
	__type(value, __u32);
} per_cpu SEC(".maps");

const volatile __u64 weight = 1;	/* .rodata */
__u64 total = 0;			/* .bss */
__u32 last_slot = 0;			/* .bss */

SEC("xdp")
int count_slot(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct slot_stat fresh = {}, *st;
	__u32 slot, one = 1, *pc;
	__u64 *v;

	if (data + sizeof(__u32) > end)
		return XDP_PASS;
	slot = *(__u32 *)data % SLOTS;
	v = bpf_map_lookup_elem(&hist, &slot);
	if (v)
		__sync_fetch_and_add(v, weight);
	v = bpf_map_lookup_elem(&plain, &slot);
	if (v)
		__sync_fetch_and_add(v, weight);
	st = bpf_map_lookup_elem(&stats, &slot);
	if (!st) {
		bpf_map_update_elem(&stats, &slot, &fresh, BPF_NOEXIST);
		st = bpf_map_lookup_elem(&stats, &slot);
	}
	if (st) {
		__sync_fetch_and_add(&st->count, weight);
		st->last = slot;
		st->cpu = bpf_get_smp_processor_id();
		st->flag = 1;
	}
	pc = bpf_map_lookup_elem(&per_cpu, &slot);
	if (pc)
		*pc += 1;
	else
		bpf_map_update_elem(&per_cpu, &slot, &one, BPF_NOEXIST);
	__sync_fetch_and_add(&total, weight);
	last_slot = slot;
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
