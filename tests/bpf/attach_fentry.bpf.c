// fentry/fexit on the getpid handler, for tests/test_attach_refused.py.  The test names the
// target with set_attach_target() (__x64_sys_getpid or __do_sys_getpid, whichever the kernel's
// BTF has; both take the pt_regs pointer).  Loading needs a kernel that allows BPF
// trampolines: lockdown=integrity refuses the load with EPERM.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

enum { K_ENTRY, K_EXIT, K_RETVAL, K_SLOTS = 4 };

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, K_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

const volatile __u32 target_pid = 0;

static __always_inline int ours(void)
{
	return (bpf_get_current_pid_tgid() >> 32) == target_pid;
}

static __always_inline void add(__u32 key, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&counts, &key);

	if (v)
		__sync_fetch_and_add(v, n);
}

SEC("fentry")
int BPF_PROG(getpid_entry, struct pt_regs *regs)
{
	if (ours())
		add(K_ENTRY, 1);
	return 0;
}

SEC("fexit")
int BPF_PROG(getpid_exit, struct pt_regs *regs, long ret)
{
	if (ours()) {
		add(K_EXIT, 1);
		add(K_RETVAL, ret);
	}
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
