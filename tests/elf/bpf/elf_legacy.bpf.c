// Legacy SEC("maps") bpf_map_def maps and a version section; libbpf 1.x refuses to open this.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct legacy_map_def {
	unsigned int type;
	unsigned int key_size;
	unsigned int value_size;
	unsigned int max_entries;
	unsigned int map_flags;
};

struct legacy_map_def my_map SEC("maps") = {
	.type = BPF_MAP_TYPE_ARRAY,
	.key_size = sizeof(int),
	.value_size = sizeof(long),
	.max_entries = 64,
};

struct legacy_map_def my_hash SEC("maps") = {
	.type = BPF_MAP_TYPE_HASH,
	.key_size = 8,
	.value_size = 16,
	.max_entries = 128,
	.map_flags = 1,
};

SEC("kprobe/trace_preempt_off")
int on_off(void *ctx)
{
	int key = 0;
	long *v = bpf_map_lookup_elem(&my_map, &key);

	if (v)
		*v = bpf_ktime_get_ns();
	return 0;
}

char _license[] SEC("license") = "GPL";
unsigned int _version SEC("version") = 0x060100;
