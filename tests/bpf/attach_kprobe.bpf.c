// kprobe programs for tests/test_attach_refused.py: they load everywhere; attaching needs a
// kernel with CONFIG_KPROBES (the VM tier), on this host it must fail with ENOENT.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

enum { K_ENTRY, K_RETURN, K_RETVAL, K_OFFSET, K_SYSCALL, K_SLOTS = 8 };

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

SEC("kprobe")
int on_entry(struct pt_regs *ctx)
{
	if (ours())
		add(K_ENTRY, 1);
	return 0;
}

SEC("kretprobe")
int BPF_KRETPROBE(on_return, long ret)
{
	if (ours()) {
		add(K_RETURN, 1);
		add(K_RETVAL, ret);
	}
	return 0;
}

SEC("kprobe")
int on_offset(struct pt_regs *ctx)
{
	if (ours())
		add(K_OFFSET, 1);
	return 0;
}

SEC("ksyscall")
/* getpid takes no argument; naming one keeps libbpf 1.1's macro from leaving `regs` unused */
int BPF_KSYSCALL(on_syscall, long unused)
{
	(void)unused;
	if (ours())
		add(K_SYSCALL, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
