// An object that needs the kernel's BTF (a CO-RE read): libbpf loads vmlinux BTF for it.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

__u32 last_pid;

SEC("raw_tp/sys_enter")
int on_enter(void *ctx)
{
	struct task_struct *task = (void *)bpf_get_current_task();

	last_pid = BPF_CORE_READ(task, tgid);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
