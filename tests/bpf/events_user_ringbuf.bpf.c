// User ring buffer consumer for tests/test_ringbuf.py: `drain_user` (SEC("syscall"), run with
// BPF_PROG_TEST_RUN) drains the 8-byte records user space wrote into `urb` and sums them.
// USER_RINGBUF maps and bpf_user_ringbuf_drain need Linux 6.1.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_USER_RINGBUF);
	__uint(max_entries, 1 << 16);
} urb SEC(".maps");

__u64 user_total, user_count, user_bad;

static long drain_one(struct bpf_dynptr *dynptr, void *ctx)
{
	__u64 value;

	if (bpf_dynptr_read(&value, sizeof(value), dynptr, 0, 0)) {
		user_bad++;
		return 0;
	}
	user_total += value;
	user_count++;
	return 0;
}

SEC("syscall")
int drain_user(void *ctx)
{
	bpf_user_ringbuf_drain(&urb, drain_one, NULL, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
