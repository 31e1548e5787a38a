// Perf event array producer for tests/test_perfbuf.py: one sample per getpid() of the target
// process, with a sequence number and the CPU it ran on; failed outputs (ring full) are counted.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct perf_sample {
	__u64 seq;
	__u32 cpu;
	__u32 pad;
	char payload[48];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} samples SEC(".maps");

__u64 seq, produced, failed;
volatile __u32 target_tgid;
volatile __u32 target_tid;   /* when set, only this thread's calls count */

SEC("tp/syscalls/sys_enter_getpid")
int on_getpid(void *ctx)
{
	struct perf_sample s = {};
	__u64 id = bpf_get_current_pid_tgid();

	if ((id >> 32) != target_tgid || (target_tid && (__u32)id != target_tid))
		return 0;
	/* one traced thread at a time: a plain increment (fetching atomics need Linux 5.12) */
	s.seq = seq++;
	s.cpu = bpf_get_smp_processor_id();
	s.payload[0] = 'p';
	if (bpf_perf_event_output(ctx, &samples, BPF_F_CURRENT_CPU, &s, sizeof(s)))
		__sync_fetch_and_add(&failed, 1);
	else
		__sync_fetch_and_add(&produced, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
