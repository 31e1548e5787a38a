// An LSM program on the file_open hook, for tests/test_attach_refused.py.  Loading needs the
// bpf LSM and no lockdown; here the load fails with EPERM.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

const volatile __u32 target_pid = 0;

SEC("lsm/file_open")
int BPF_PROG(on_file_open, struct file *file, int ret)
{
	__u32 key = 0;
	__u64 *v;

	if ((bpf_get_current_pid_tgid() >> 32) != target_pid)
		return ret;
	v = bpf_map_lookup_elem(&counts, &key);
	if (v)
		__sync_fetch_and_add(v, 1);
	return ret;
}

char LICENSE[] SEC("license") = "GPL";
