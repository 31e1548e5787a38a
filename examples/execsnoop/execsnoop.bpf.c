// SPDX-License-Identifier: GPL-2.0
// execsnoop, the BPF side: every execve() with its arguments.
//
// The enter tracepoint copies argv into a per-thread scratch record (a hash map value, so the
// record need not fit the 512-byte BPF stack); the exit tracepoint adds the return value and
// sends only the part of the record that holds data: the fixed fields plus args_size bytes of
// NUL-separated arguments.  The records are variable-length.
//
// The events map is a ring buffer by default; where the kernel has none (before 5.8) the user
// side turns it into a perf event array before load (bpf_map__set_type) and sets use_ringbuf
// to false, so the verifier never sees the ring buffer call.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#define TASK_COMM_LEN 16
#define MAX_ARGS 20                 // arguments copied at most
#define ARG_LEN 128                 // bytes of one argument copied at most
#define ARGS_BUF (MAX_ARGS * ARG_LEN)
#define LAST_ARG (ARGS_BUF - ARG_LEN)

struct event {
	__u32 pid;
	__u32 ppid;
	__u32 uid;
	__s32 retval;
	__s32 args_count;           // arguments copied
	__u32 args_size;            // bytes of args[] in use
	__u8 truncated;             // argv had more than MAX_ARGS arguments
	char comm[TASK_COMM_LEN];
	char args[ARGS_BUF];
};

const volatile bool use_ringbuf = true;
const volatile bool ignore_failed = true;
const volatile __u32 targ_uid = (__u32)-1;  // -1: every user
const volatile __u32 targ_ppid = 0;          // 0: every parent

static const struct event empty_event = {};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);                      // thread id
	__type(value, struct event);
} execs SEC(".maps");

// RINGBUF by default; PERF_EVENT_ARRAY (4-byte keys and values) when the user side says so
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

SEC("tp/syscalls/sys_enter_execve")
int handle_enter(struct trace_event_raw_sys_enter *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id, uid = (__u32)bpf_get_current_uid_gid();
	const char **argv = (const char **)ctx->args[1];
	const char *arg;
	struct task_struct *task;
	struct event *e;
	int i, n;

	if (targ_uid != (__u32)-1 && uid != targ_uid)
		return 0;
	task = (struct task_struct *)bpf_get_current_task();
	if (targ_ppid && BPF_CORE_READ(task, real_parent, tgid) != targ_ppid)
		return 0;
	if (bpf_map_update_elem(&execs, &tid, &empty_event, BPF_NOEXIST))
		return 0;
	e = bpf_map_lookup_elem(&execs, &tid);
	if (!e)
		return 0;

	e->pid = id >> 32;
	e->uid = uid;
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);

	// argv[0] is the file name as the caller passed it
	n = bpf_probe_read_user_str(e->args, ARG_LEN, (const char *)ctx->args[0]);
	if (n < 0)
		return 0;
	e->args_size = n;
	e->args_count = 1;

	#pragma unroll
	for (i = 1; i < MAX_ARGS; i++) {
		if (bpf_probe_read_user(&arg, sizeof(arg), &argv[i]) || !arg)
			return 0;
		if (e->args_size > LAST_ARG)
			return 0;
		n = bpf_probe_read_user_str(&e->args[e->args_size], ARG_LEN, arg);
		if (n < 0)
			return 0;
		// an empty argument: Linux 6.1 returns 0 for it, without its NUL; the record
		// started zeroed, so that byte is a NUL already
		if (n == 0)
			n = 1;
		e->args_count++;
		e->args_size += n;
	}
	// one more pointer: is there an argument we did not copy?
	if (!bpf_probe_read_user(&arg, sizeof(arg), &argv[MAX_ARGS]) && arg)
		e->truncated = 1;
	return 0;
}

SEC("tp/syscalls/sys_exit_execve")
int handle_exit(struct trace_event_raw_sys_exit *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct event *e;
	__u64 len;
	long ret = ctx->ret;

	e = bpf_map_lookup_elem(&execs, &tid);
	if (!e)
		return 0;
	if (ignore_failed && ret < 0)
		goto cleanup;
	e->retval = ret;
	bpf_get_current_comm(&e->comm, sizeof(e->comm));
	len = offsetof(struct event, args) + e->args_size;
	if (len > sizeof(*e))
		goto cleanup;
	if (use_ringbuf)
		bpf_ringbuf_output(&events, e, len, 0);
	else
		bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, e, len);
cleanup:
	bpf_map_delete_elem(&execs, &tid);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
