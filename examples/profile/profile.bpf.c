// SPDX-License-Identifier: GPL-2.0
// profile, the BPF side: a perf_event program run on every sample of a CPU clock (one perf
// event per CPU, opened by the user side); it counts each distinct (process, user stack,
// kernel stack) and keeps the stacks in a stack trace map.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#define TASK_COMM_LEN 16
#define MAX_STACK_DEPTH 127

struct sample_key {
	__u32 pid;
	__s32 user_stack_id;             // -1: not taken; other negatives: -errno
	__s32 kern_stack_id;
	char comm[TASK_COMM_LEN];
};

typedef __u64 stack_trace_t[MAX_STACK_DEPTH];

const volatile bool kernel_stacks = true;
const volatile bool user_stacks = true;
const volatile bool include_idle = false;
const volatile __u32 targ_tgid = 0;       // 0: every process

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__type(key, __u32);
	__type(value, stack_trace_t);
	__uint(max_entries, 16384);
} stacks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct sample_key);
	__type(value, __u64);
	__uint(max_entries, 16384);
} counts SEC(".maps");

SEC("perf_event")
int do_sample(struct bpf_perf_event_data *ctx)
{
	__u64 id = bpf_get_current_pid_tgid(), one = 1, *count;
	struct sample_key key = {};

	if (!include_idle && (__u32)id == 0)
		return 0;
	if (targ_tgid && (id >> 32) != targ_tgid)
		return 0;
	key.pid = id >> 32;
	bpf_get_current_comm(&key.comm, sizeof(key.comm));
	key.kern_stack_id = kernel_stacks ? bpf_get_stackid(ctx, &stacks, 0) : -1;
	key.user_stack_id = user_stacks ? bpf_get_stackid(ctx, &stacks, BPF_F_USER_STACK) : -1;

	count = bpf_map_lookup_elem(&counts, &key);
	if (count)
		__sync_fetch_and_add(count, 1);
	else
		bpf_map_update_elem(&counts, &key, &one, BPF_NOEXIST);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
