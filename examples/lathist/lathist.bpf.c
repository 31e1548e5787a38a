// SPDX-License-Identifier: GPL-2.0
// The shape of Linux's samples/bpf/lathist_kern.c: two BTF-defined array maps and two programs.
// One program stores bpf_ktime_get_ns() per CPU; the other takes log2(now - then) and atomically
// increments my_lat[cpu * MAX_ENTRIES + log2].  The sample hooks trace_preempt_off/on with
// kprobes; the same pair is offered here on the raw syscall entry/exit tracepoints (which every
// kernel with ftrace syscalls has) and as kprobe/kretprobe for kernels with kprobes.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define MAX_ENTRIES 20
#define MAX_CPU 64

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, int);
	__type(value, __u64);
	__uint(max_entries, MAX_CPU);
} my_map SEC(".maps");

/* Mmapable: the reader maps the whole histogram and reads it with no syscall per bucket. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, int);
	__type(value, long);
	__uint(max_entries, MAX_CPU * MAX_ENTRIES);
} my_lat SEC(".maps");

static __always_inline unsigned int log2(unsigned int v)
{
	unsigned int r, shift;

	r = (v > 0xFFFF) << 4; v >>= r;
	shift = (v > 0xFF) << 3; v >>= shift; r |= shift;
	shift = (v > 0xF) << 2; v >>= shift; r |= shift;
	shift = (v > 0x3) << 1; v >>= shift; r |= shift;
	r |= (v >> 1);
	return r;
}

static __always_inline unsigned int log2l(unsigned long v)
{
	unsigned int hi = v >> 32;

	if (hi)
		return log2(hi) + 32;
	return log2(v);
}

static __always_inline int record_start(void)
{
	int cpu = bpf_get_smp_processor_id();
	__u64 *ts = bpf_map_lookup_elem(&my_map, &cpu);

	if (ts)
		*ts = bpf_ktime_get_ns();
	return 0;
}

static __always_inline int record_end(void)
{
	int cpu = bpf_get_smp_processor_id();
	__u64 *ts, cur_ts, delta;
	long *val;
	int key;

	ts = bpf_map_lookup_elem(&my_map, &cpu);
	if (!ts || !*ts)
		return 0;
	cur_ts = bpf_ktime_get_ns();
	delta = log2l(cur_ts - *ts);
	if (delta > MAX_ENTRIES - 1)
		delta = MAX_ENTRIES - 1;
	key = cpu * MAX_ENTRIES + delta;
	val = bpf_map_lookup_elem(&my_lat, &key);
	if (val)
		__sync_fetch_and_add((long *)val, 1);
	return 0;
}

SEC("tp/raw_syscalls/sys_enter")
int bpf_prog1(void *ctx)
{
	return record_start();
}

SEC("tp/raw_syscalls/sys_exit")
int bpf_prog2(void *ctx)
{
	return record_end();
}

/* The kprobe pair for --kprobe FUNC (not loaded unless asked for). */
SEC("kprobe")
int bpf_kprobe_start(void *ctx)
{
	return record_start();
}

SEC("kretprobe")
int bpf_kprobe_end(void *ctx)
{
	return record_end();
}

char _license[] SEC("license") = "GPL";
