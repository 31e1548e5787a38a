// Object.attach() (tests/test_object_attach.py): programs a skeleton's attach would attach,
// and programs it skips.  `counts` has one slot per program that can run.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/usdt.bpf.h>

enum { K_GETPID, K_GETPPID, K_OFF, K_UNLOADED, K_SLOTS };

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, K_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

const volatile int target_pid = 0;

static __always_inline void bump(__u32 key)
{
	__u64 *v;

	if ((bpf_get_current_pid_tgid() >> 32) != target_pid)
		return;
	v = bpf_map_lookup_elem(&counts, &key);
	if (v)
		__sync_fetch_and_add(v, 1);
}

/* attached by section */
SEC("tp/syscalls/sys_enter_getpid")
int on_getpid(void *ctx)
{
	bump(K_GETPID);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_getppid")
int on_getppid(void *ctx)
{
	bump(K_GETPPID);
	return 0;
}

/* the test turns autoattach off */
SEC("tp/syscalls/sys_enter_getpid")
int not_auto(void *ctx)
{
	bump(K_OFF);
	return 0;
}

/* the test turns autoload off */
SEC("tp/syscalls/sys_enter_getpid")
int not_loaded(void *ctx)
{
	bump(K_UNLOADED);
	return 0;
}

/* sections that name no target: skipped */
SEC("uprobe")
int BPF_KPROBE(bare_uprobe)
{
	return 0;
}

SEC("usdt")
int BPF_USDT(bare_usdt)
{
	return 0;
}

/* a section type with no auto-attach: skipped */
SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

/* a target that does not exist: its attach fails (loaded only by the test of that) */
SEC("tp/pylibbpf_no_such_category/pylibbpf_no_such_event")
int bad_target(void *ctx)
{
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
