// SPDX-License-Identifier: GPL-2.0
// runqlat, the BPF side: how long tasks wait on a run queue, from the wake-up (or the
// preemption) that made them runnable to the context switch that runs them, as a log2
// histogram per process or for everything.
//
// Each handler is written once and hooked twice: as tp_btf (BTF-typed raw tracepoints, Linux
// 5.5 with kernel BTF) and as raw_tp (Linux 4.17).  The user side probes the kernel and loads
// one set (bpf_program__set_autoload), as libbpf-tools' runqlat does.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#define MAX_SLOTS 26
#define TASK_COMM_LEN 16
#define TASK_RUNNING 0

struct hist {
	__u32 slots[MAX_SLOTS];
	char comm[TASK_COMM_LEN];
};

const volatile bool targ_per_process = false;
const volatile bool targ_ms = false;
const volatile __u32 targ_tgid = 0;          // 0: every process

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);                      // thread id
	__type(value, __u64);                    // when it became runnable
} start SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);                      // the process (tgid), or 0 for everything
	__type(value, struct hist);
} hists SEC(".maps");

static const struct hist zero_hist = {};

// task_struct's state was renamed __state in Linux 5.14: read whichever this kernel has
struct task_struct___before_5_14 {
	long state;
} __attribute__((preserve_access_index));

static __always_inline long task_state(struct task_struct *t)
{
	struct task_struct___before_5_14 *old = (void *)t;

	if (bpf_core_field_exists(t->__state))
		return BPF_CORE_READ(t, __state);
	return BPF_CORE_READ(old, state);
}

static __always_inline unsigned int log2_u32(__u32 v)
{
	unsigned int r, shift;

	r = (v > 0xFFFF) << 4; v >>= r;
	shift = (v > 0xFF) << 3; v >>= shift; r |= shift;
	shift = (v > 0xF) << 2; v >>= shift; r |= shift;
	shift = (v > 0x3) << 1; v >>= shift; r |= shift;
	return r | (v >> 1);
}

static __always_inline unsigned int log2_u64(__u64 v)
{
	__u32 hi = v >> 32;

	return hi ? log2_u32(hi) + 32 : log2_u32(v);
}

static __always_inline int runnable(struct task_struct *t)
{
	__u32 pid = BPF_CORE_READ(t, pid);
	__u64 ts;

	if (!pid)
		return 0;                        // the idle task
	if (targ_tgid && BPF_CORE_READ(t, tgid) != targ_tgid)
		return 0;
	ts = bpf_ktime_get_ns();
	bpf_map_update_elem(&start, &pid, &ts, BPF_ANY);
	return 0;
}

static __always_inline int switched(struct task_struct *prev, struct task_struct *next)
{
	__u32 pid = BPF_CORE_READ(next, pid), key = 0;
	struct hist *hist;
	__u64 *tsp, delta;
	__u64 slot;                      // 64-bit: a 32-bit index loses its bounds on 6.1

	// preempted while runnable: it waits on the run queue again from now
	if (task_state(prev) == TASK_RUNNING)
		runnable(prev);

	tsp = bpf_map_lookup_elem(&start, &pid);
	if (!tsp)
		return 0;
	delta = bpf_ktime_get_ns() - *tsp;
	delta /= targ_ms ? 1000000 : 1000;

	if (targ_per_process)
		key = BPF_CORE_READ(next, tgid);
	hist = bpf_map_lookup_elem(&hists, &key);
	if (!hist) {
		bpf_map_update_elem(&hists, &key, &zero_hist, BPF_NOEXIST);
		hist = bpf_map_lookup_elem(&hists, &key);
		if (!hist)
			goto cleanup;
		if (targ_per_process)
			BPF_CORE_READ_STR_INTO(&hist->comm, next, comm);
	}
	slot = log2_u64(delta);
	if (slot >= MAX_SLOTS)
		slot = MAX_SLOTS - 1;
	__sync_fetch_and_add(&hist->slots[slot], 1);
cleanup:
	bpf_map_delete_elem(&start, &pid);
	return 0;
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(wakeup_btf, struct task_struct *p)
{
	return runnable(p);
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(wakeup_new_btf, struct task_struct *p)
{
	return runnable(p);
}

SEC("tp_btf/sched_switch")
int BPF_PROG(switch_btf, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	return switched(prev, next);
}

SEC("raw_tp/sched_wakeup")
int BPF_PROG(wakeup_raw, struct task_struct *p)
{
	return runnable(p);
}

SEC("raw_tp/sched_wakeup_new")
int BPF_PROG(wakeup_new_raw, struct task_struct *p)
{
	return runnable(p);
}

SEC("raw_tp/sched_switch")
int BPF_PROG(switch_raw, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	return switched(prev, next);
}

char LICENSE[] SEC("license") = "GPL";
