// Benchmark producer: `emit` (SEC("syscall"), BPF_PROG_TEST_RUN) writes ctx->count 64-byte
// events into `rb` without wakeups, so the consumer is measured on a pre-filled ring.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct args {
	__u32 count;
};

struct event {
	__u64 seq;
	__u64 fill[7];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 27);
} rb SEC(".maps");

__u64 produced, dropped;

static long emit_one(__u64 i, void *ctx)
{
	struct event *e = bpf_ringbuf_reserve(&rb, sizeof(*e), 0);

	if (!e) {
		dropped++;
		return 1;
	}
	e->seq = produced++;
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
	return 0;
}

SEC("syscall")
int emit(struct args *a)
{
	bpf_loop(a->count, emit_one, NULL, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
