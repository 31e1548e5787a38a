// uprobe, uretprobe and USDT programs for tests/test_attach_uprobe.py, on the helper
// tests/helpers/uprobe_target.c.  Hits are counted per process (tgid) so that two helpers
// running at once can be told apart.  Built with -DHELPER="<path>" the object also holds
// programs whose section names the target, for attach() by section; -DWITH_COOKIE makes
// the uprobe record its attach cookie.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/usdt.bpf.h>

struct stats {
	__u64 entries;   /* uprobe on pylibbpf_target */
	__u64 arg_sum;   /* sum of its argument */
	__u64 returns;   /* uretprobe */
	__u64 ret_sum;   /* sum of its return values */
	__u64 offsets;   /* uprobe attached by file offset */
	__u64 ticks;     /* USDT pylibbpf:tick */
	__u64 tick_sum;  /* sum of the probe's first argument */
	__u64 last_sum;  /* the probe's second argument, last seen */
	__u64 cookie;    /* bpf_get_attach_cookie() of the last uprobe hit */
	__u64 auto_entries;
	__u64 auto_ticks;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, struct stats);
} by_pid SEC(".maps");

static __always_inline struct stats *stats(void)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	struct stats zero = {}, *s;

	s = bpf_map_lookup_elem(&by_pid, &pid);
	if (s)
		return s;
	bpf_map_update_elem(&by_pid, &pid, &zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&by_pid, &pid);
}

SEC("uprobe")
int BPF_KPROBE(on_entry, int x)
{
	struct stats *s = stats();

	if (s) {
		__sync_fetch_and_add(&s->entries, 1);
		__sync_fetch_and_add(&s->arg_sum, x);
#ifdef WITH_COOKIE /* bpf_get_attach_cookie() needs Linux 5.15 */
		s->cookie = bpf_get_attach_cookie(ctx);
#endif
	}
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(on_return, int ret)
{
	struct stats *s = stats();

	if (s) {
		__sync_fetch_and_add(&s->returns, 1);
		__sync_fetch_and_add(&s->ret_sum, ret);
	}
	return 0;
}

SEC("uprobe")
int on_offset(struct pt_regs *ctx)
{
	struct stats *s = stats();

	if (s)
		__sync_fetch_and_add(&s->offsets, 1);
	return 0;
}

SEC("usdt")
int BPF_USDT(on_tick, int i, long sum)
{
	struct stats *s = stats();

	if (s) {
		__sync_fetch_and_add(&s->ticks, 1);
		__sync_fetch_and_add(&s->tick_sum, i);
		s->last_sum = sum;
	}
	return 0;
}

#ifdef HELPER
SEC("uprobe/" HELPER ":pylibbpf_target")
int auto_entry(struct pt_regs *ctx)
{
	struct stats *s = stats();

	if (s)
		__sync_fetch_and_add(&s->auto_entries, 1);
	return 0;
}

SEC("usdt/" HELPER ":pylibbpf:tick")
int auto_tick(struct pt_regs *ctx)
{
	struct stats *s = stats();

	if (s)
		__sync_fetch_and_add(&s->auto_ticks, 1);
	return 0;
}
#endif

char LICENSE[] SEC("license") = "GPL";
