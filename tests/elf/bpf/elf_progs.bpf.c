// Many program kinds, several programs in one section, static and global sub-programs.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, u32);
	__type(value, u64);
	__uint(max_entries, 8);
} counters SEC(".maps");

static __noinline int bump(u32 slot)
{
	u64 *v = bpf_map_lookup_elem(&counters, &slot);

	if (!v)
		return -1;
	__sync_fetch_and_add(v, 1);
	return 0;
}

__noinline int global_helper(int x)
{
	if (x > 10)
		return x * 2;
	return bump((u32)x & 7);
}

static __noinline int nested(int x)
{
	return global_helper(x + 1) + 1;
}

SEC("tp/syscalls/sys_enter_getpid")
int tp_one(void *ctx)
{
	return bump(0);
}

SEC("tp/syscalls/sys_enter_getpid")
int tp_two(void *ctx)
{
	return nested(1);
}

SEC("tracepoint/syscalls/sys_enter_getppid")
int tp_three(void *ctx)
{
	return bump(2);
}

SEC("uprobe")
int up(struct pt_regs *ctx)
{
	return bump(3);
}

SEC("uretprobe.s")
int up_sleep(struct pt_regs *ctx)
{
	return 0;
}

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	void *end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;

	if (data + 14 > end)
		return XDP_DROP;
	return XDP_PASS;
}

SEC("tc")
int tc_ok(struct __sk_buff *skb)
{
	return skb->len > 100 ? 0 : 2;
}

SEC("socket")
int sock(struct __sk_buff *skb)
{
	return skb->len;
}

SEC("cgroup_skb/ingress")
int cg_in(struct __sk_buff *skb)
{
	return 1;
}

SEC("iter/task")
int it(struct bpf_iter__task *ctx)
{
	return 0;
}

SEC("perf_event")
int pe(void *ctx)
{
	return bump(4);
}

SEC("raw_tp/sys_enter")
int rtp(void *ctx)
{
	return 0;
}

SEC("tp_btf/sched_switch")
int btf_tp(u64 *ctx)
{
	return 0;
}

SEC("fentry/do_nanosleep")
int BPF_PROG(fe, void *a)
{
	return 0;
}

SEC("fexit.s/do_nanosleep")
int BPF_PROG(fx, void *a, int ret)
{
	return 0;
}

SEC("lsm/file_open")
int BPF_PROG(lsm_open, struct file *file)
{
	return 0;
}

SEC("kprobe/do_nanosleep")
int kp(struct pt_regs *ctx)
{
	return bump(5);
}

SEC("kretprobe/do_nanosleep")
int krp(struct pt_regs *ctx)
{
	return 0;
}

SEC("usdt")
int ud(struct pt_regs *ctx)
{
	return 0;
}

SEC("cgroup/connect4")
int conn4(struct bpf_sock_addr *ctx)
{
	return 1;
}

SEC("syscall")
int sys(void *ctx)
{
	return 0;
}

SEC("custom_unknown_section")
int unknown_kind(void *ctx)
{
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
