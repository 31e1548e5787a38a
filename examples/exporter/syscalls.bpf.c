// SPDX-License-Identifier: GPL-2.0
// System calls counted by number, for `pylibbpf export` (examples/exporter/syscalls.yaml): the
// raw_syscalls:sys_enter tracepoint fires on every system call with its number in `id`; a
// per-CPU hash keyed by that number counts them without contention, and the exporter sums the
// CPUs and names the numbers (the syscall label decoder).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

// set from the config before load: count only this process (0: every process)
const volatile __u32 target_tgid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);		// the system call's number
	__type(value, __u64);		// how many times it was entered
} syscall_counts SEC(".maps");

SEC("tp/raw_syscalls/sys_enter")
int count_syscall(struct trace_event_raw_sys_enter *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u32 id = ctx->id;
	__u64 one = 1, *count;

	if (target_tgid && tgid != target_tgid)
		return 0;
	count = bpf_map_lookup_elem(&syscall_counts, &id);
	if (count)
		*count += 1;	// this CPU's slot: no other CPU writes it
	else
		bpf_map_update_elem(&syscall_counts, &id, &one, BPF_NOEXIST);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
