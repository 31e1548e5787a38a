// SPDX-License-Identifier: GPL-2.0
// One handler, two ways to hook it: the sched_process_exec tracepoint as a BTF-enabled raw
// tracepoint (tp_btf, Linux 5.5, needs kernel BTF; arguments are typed kernel pointers) and as
// a plain raw tracepoint (raw_tp, Linux 4.17).  The user side probes the kernel and loads only
// the variant it supports (bpf_program__set_autoload), as libbpf-tools do.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#define VARIANT_TP_BTF 1
#define VARIANT_RAW_TP 2

struct exec_seen {
	__u32 variant;
	char comm[16];
};

// set by the user side before load: only the children of this process are recorded
const volatile __u32 parent_tgid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);                 // pid (tgid) of the process that called execve
	__type(value, struct exec_seen);
	__uint(max_entries, 64);
} seen SEC(".maps");

static __always_inline int record(struct task_struct *p, __u32 variant)
{
	struct exec_seen value = {.variant = variant};
	__u32 pid;

	if (BPF_CORE_READ(p, real_parent, tgid) != parent_tgid)
		return 0;
	pid = BPF_CORE_READ(p, tgid);
	bpf_get_current_comm(value.comm, sizeof(value.comm));
	bpf_map_update_elem(&seen, &pid, &value, BPF_ANY);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(exec_btf, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	return record(p, VARIANT_TP_BTF);
}

SEC("raw_tp/sched_process_exec")
int BPF_PROG(exec_raw, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	return record(p, VARIANT_RAW_TP);
}

char LICENSE[] SEC("license") = "GPL";
