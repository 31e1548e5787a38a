// SPDX-License-Identifier: GPL-2.0
// syscount, the BPF side: system calls counted per syscall number (or per process), with the
// time spent in them, from the raw_syscalls enter/exit tracepoints.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define TASK_COMM_LEN 16

struct data {
	__u64 count;
	__u64 total_ns;
	char comm[TASK_COMM_LEN];        // per process: the command's name
};

const volatile bool count_by_process = false;
const volatile bool measure_latency = false;
const volatile bool only_failures = false;
const volatile __s32 only_errno = 0;      // 0: any error
const volatile __u32 targ_tgid = 0;       // 0: every process

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);                   // thread id
	__type(value, __u64);                 // when it entered the call
} start SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);                   // syscall number, or tgid per process
	__type(value, struct data);
} counts SEC(".maps");

static const struct data zero = {};

SEC("tp/raw_syscalls/sys_enter")
int sys_enter(struct trace_event_raw_sys_enter *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	__u64 ts;

	if (targ_tgid && (id >> 32) != targ_tgid)
		return 0;
	if (measure_latency) {
		ts = bpf_ktime_get_ns();
		bpf_map_update_elem(&start, &tid, &ts, BPF_ANY);
	}
	return 0;
}

SEC("tp/raw_syscalls/sys_exit")
int sys_exit(struct trace_event_raw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id, key;
	long ret = ctx->ret;
	__u64 *start_ts, delta = 0;
	struct data *data;

	if (targ_tgid && (id >> 32) != targ_tgid)
		return 0;
	if (ctx->id < 0)
		return 0;                     // not a system call (a restart, seccomp)
	if (measure_latency) {
		start_ts = bpf_map_lookup_elem(&start, &tid);
		if (!start_ts)
			return 0;
		delta = bpf_ktime_get_ns() - *start_ts;
		bpf_map_delete_elem(&start, &tid);
	}
	if (only_failures && ret >= 0)
		return 0;
	if (only_errno && ret != -only_errno)
		return 0;

	key = count_by_process ? (__u32)(id >> 32) : (__u32)ctx->id;
	data = bpf_map_lookup_elem(&counts, &key);
	if (!data) {
		bpf_map_update_elem(&counts, &key, &zero, BPF_NOEXIST);
		data = bpf_map_lookup_elem(&counts, &key);
		if (!data)
			return 0;
		if (count_by_process)
			bpf_get_current_comm(&data->comm, sizeof(data->comm));
	}
	__sync_fetch_and_add(&data->count, 1);
	if (measure_latency)
		__sync_fetch_and_add(&data->total_ns, delta);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
