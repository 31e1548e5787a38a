// The object the CLI views are compared with bpftool on: programs of two types, maps with BTF
// (a hash of structs, a per-CPU array, global data) and a link.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

enum view_state { VIEW_IDLE = 0, VIEW_BUSY = 1, VIEW_DONE = 7 };

struct view_value {
	__u64 calls;
	char comm[16];
	enum view_state state;
	__s16 delta;
	__u8 flags[3];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, struct view_value);
} view_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} view_percpu SEC(".maps");

__u64 view_total = 0;

SEC("tp/syscalls/sys_enter_getppid")
int view_tp(void *ctx)
{
	__u32 key = 0;
	__u64 *v = bpf_map_lookup_elem(&view_percpu, &key);

	if (v)
		__sync_fetch_and_add(v, 1);
	__sync_fetch_and_add(&view_total, 1);
	return 0;
}

SEC("raw_tp/sys_enter")
int view_raw(void *ctx)
{
	__u32 key = 1;
	struct view_value *v = bpf_map_lookup_elem(&view_counts, &key);

	/* counts only while the entry says busy: the tests write VIEW_DONE, so what they
	 * compare stays still */
	if (v && v->state == VIEW_BUSY)
		__sync_fetch_and_add(&v->calls, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
