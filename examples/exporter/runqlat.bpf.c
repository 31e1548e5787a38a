// SPDX-License-Identifier: GPL-2.0
// Run-queue latency, the time a task waits between being woken and running, as a log2
// histogram of microseconds per cgroup (the shape of libbpf-tools' runqlat), for
// `pylibbpf export` (examples/exporter/runqlat.yaml).
//
// Each handler is hooked twice: as a BTF-enabled tracepoint (tp_btf, Linux 5.5, kernel BTF)
// and as a plain raw tracepoint (raw_tp); the exporter loads the variant the kernel supports
// (the config's `programs: - first_of: [...]`).  Task fields are read with BPF_CORE_READ, which
// both variants accept.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#define MAX_SLOTS 26
#define TASK_RUNNING 0

struct hist {
	__u64 slots[MAX_SLOTS];	// slot i: latencies with floor(log2(us)) == i; the last is open
	__u64 total_us;		// the sum of the latencies, for the histogram's _sum
};

// set from the config before load: one histogram per cgroup (else one, under cgroup id 0)
const volatile bool per_cgroup = false;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);		// pid
	__type(value, __u64);		// when it was woken (ns)
} start SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);		// cgroup id (the cgroup v2 directory's inode number)
	__type(value, struct hist);
} runq_hists SEC(".maps");

static struct hist zero;

// kernels before 5.14 call task_struct's state `state`
struct task_struct___old {
	long state;
} __attribute__((preserve_access_index));

static __always_inline long task_state(struct task_struct *t)
{
	if (bpf_core_field_exists(t->__state))
		return BPF_CORE_READ(t, __state);
	return BPF_CORE_READ((struct task_struct___old *)t, state);
}

static __always_inline unsigned int log2l(__u64 v)
{
	unsigned int r = 0;

	// floor(log2(v)), 0 for 0 and 1: a bounded loop the verifier accepts on old kernels
	for (int i = 32; i > 0; i >>= 1) {
		if (v >> i) {
			v >>= i;
			r += i;
		}
	}
	return r;
}

static __always_inline int enqueue(struct task_struct *p)
{
	__u32 pid = BPF_CORE_READ(p, pid);
	__u64 ts;

	if (!pid)
		return 0;
	ts = bpf_ktime_get_ns();
	bpf_map_update_elem(&start, &pid, &ts, BPF_ANY);
	return 0;
}

static __always_inline int switched(struct task_struct *prev, struct task_struct *next)
{
	__u32 pid = BPF_CORE_READ(next, pid);
	__u64 *tsp, delta_us, key = 0;
	struct hist *h;
	unsigned int slot;

	if (task_state(prev) == TASK_RUNNING)
		enqueue(prev);	// preempted: it waits on the run queue from now
	tsp = bpf_map_lookup_elem(&start, &pid);
	if (!tsp)
		return 0;
	delta_us = (bpf_ktime_get_ns() - *tsp) / 1000;
	bpf_map_delete_elem(&start, &pid);
	if (per_cgroup)
		key = BPF_CORE_READ(next, cgroups, dfl_cgrp, kn, id);
	h = bpf_map_lookup_elem(&runq_hists, &key);
	if (!h) {
		bpf_map_update_elem(&runq_hists, &key, &zero, BPF_NOEXIST);
		h = bpf_map_lookup_elem(&runq_hists, &key);
		if (!h)
			return 0;
	}
	slot = log2l(delta_us);
	if (slot >= MAX_SLOTS)
		slot = MAX_SLOTS - 1;
	__sync_fetch_and_add(&h->slots[slot], 1);
	__sync_fetch_and_add(&h->total_us, delta_us);
	return 0;
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(wakeup_btf, struct task_struct *p)
{
	return enqueue(p);
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(wakeup_new_btf, struct task_struct *p)
{
	return enqueue(p);
}

SEC("tp_btf/sched_switch")
int BPF_PROG(switch_btf, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	return switched(prev, next);
}

SEC("raw_tp/sched_wakeup")
int BPF_PROG(wakeup_raw, struct task_struct *p)
{
	return enqueue(p);
}

SEC("raw_tp/sched_wakeup_new")
int BPF_PROG(wakeup_new_raw, struct task_struct *p)
{
	return enqueue(p);
}

SEC("raw_tp/sched_switch")
int BPF_PROG(switch_raw, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	return switched(prev, next);
}

char LICENSE[] SEC("license") = "GPL";
