// Maps used between Object.prepare() and load() (tests/test_prepare.py): the test fills
// `steps` and `.data`'s target after prepare(), before the program is loaded.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

const volatile __u64 scale = 1;	// .rodata: set before prepare(), frozen by it
__u32 target_tgid = 1;		// .data (not zero, or it would be in .bss)
__u64 total = 0;		// .bss

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} steps SEC(".maps");

SEC("tp/syscalls/sys_enter_getpid")
int on_getpid(void *ctx)
{
	__u32 key = 0;
	__u64 *step;

	if ((bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return 0;
	step = bpf_map_lookup_elem(&steps, &key);
	if (step)
		__sync_fetch_and_add(&total, *step * scale);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
