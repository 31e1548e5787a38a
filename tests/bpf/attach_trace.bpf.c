// Tracing programs for tests/test_attach_trace.py and tests/test_links.py: every attach path
// that works on a locked-down kernel without kprobes.  Counters live in `counts`; events of
// other processes are ignored through the .rodata `target_pid` (set before load).
//
// The program types here are not all loadable on every kernel (a kernel build may refuse the
// iterators, tp_btf needs BTF, ...): each test autoloads only the programs it uses (see
// open_object(programs=...) in tests/attach_support.py), so one refused program takes no
// unrelated test with it.  REFUSE_<FEATURE> (tests/features.py refusal_cflags) turns the
// program concerned into one the verifier rejects, to simulate such a kernel.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#define NR_GETPID 39 /* x86_64 */

enum {
	K_TP, K_RAW, K_BTF, K_TP_EXPLICIT, K_RAW_EXPLICIT, K_PERF, K_OTHER, K_RAW_RET,
	K_SLOTS = 16,
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, K_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

/* what the map-element iterator prints */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 5);
	__type(key, __u32);
	__type(value, __u64);
} table SEC(".maps");

const volatile __u32 target_pid = 0;

static __always_inline int ours(void)
{
	return (bpf_get_current_pid_tgid() >> 32) == target_pid;
}

static __always_inline void bump(__u32 key)
{
	__u64 *v = bpf_map_lookup_elem(&counts, &key);

	if (v)
		__sync_fetch_and_add(v, 1);
}

SEC("tp/syscalls/sys_enter_getpid")
int tp_getpid(void *ctx)
{
	if (ours())
		bump(K_TP);
	return 0;
}

SEC("raw_tp/sys_enter")
int raw_enter(struct bpf_raw_tracepoint_args *ctx)
{
	if (ours() && ctx->args[1] == NR_GETPID)
		bump(K_RAW);
	return 0;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(btf_enter, struct pt_regs *regs, long id)
{
	if (ours() && id == NR_GETPID)
		bump(K_BTF);
	return 0;
}

/* No target in the section: attached with attach_tracepoint()/attach_raw_tracepoint(). */
SEC("tracepoint")
int tp_explicit(void *ctx)
{
	if (ours())
		bump(K_TP_EXPLICIT);
	return 0;
}

SEC("raw_tp")
int raw_explicit(struct bpf_raw_tracepoint_args *ctx)
{
	if (ours() && ctx->args[1] == NR_GETPID)
		bump(K_RAW_EXPLICIT);
	return 0;
}

/* A second program on the same hook, for Link.update_program(). */
SEC("raw_tp")
int raw_other(struct bpf_raw_tracepoint_args *ctx)
{
	if (ours() && ctx->args[1] == NR_GETPID)
		bump(K_OTHER);
	return 0;
}

SEC("perf_event")
int on_sample(struct bpf_perf_event_data *ctx)
{
	if (ours())
		bump(K_PERF);
	return 0;
}

/* BPF_PROG_TEST_RUN with ctx_in: returns args[0] + args[1], stores args[2] in counts. */
SEC("raw_tp")
int raw_testrun(struct bpf_raw_tracepoint_args *ctx)
{
	__u32 key = K_RAW_RET;
	__u64 v = ctx->args[2];

	bpf_map_update_elem(&counts, &key, &v, BPF_ANY);
	return ctx->args[0] + ctx->args[1];
}

SEC("iter/task")
int dump_task(struct bpf_iter__task *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *task = ctx->task;

#ifdef REFUSE_ITER_TASK
	if (task->pid == 0) /* no NULL check first: the verifier rejects this */
		return 1;
#endif
	if (!task || task->pid != task->tgid)
		return 0;
	BPF_SEQ_PRINTF(seq, "%d %s\n", task->tgid, task->comm);
	return 0;
}

SEC("iter/bpf_map_elem")
int dump_elem(struct bpf_iter__bpf_map_elem *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	__u32 *key = ctx->key;
	__u64 *value = ctx->value;

#ifdef REFUSE_ITER_MAP_ELEM
	if (*key == 0xffffffff) /* no NULL check first: the verifier rejects this */
		return 1;
#endif
	if (!key || !value)
		return 0;
	BPF_SEQ_PRINTF(seq, "%u=%llu\n", *key, *value);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
