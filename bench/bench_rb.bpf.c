// Benchmark producers, run with BPF_PROG_TEST_RUN so that each consumer is measured on buffers
// filled beforehand: `emit` (SEC("syscall")) writes ctx->count 128-byte events into the ring
// buffer `rb` without wakeups; `emit_perf` (a raw tracepoint program, run on the current CPU)
// writes args[0] of them into the perf event array `perf`.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct args {
	__u32 count;
};

struct event {
	__u64 seq;
	__u64 fill[15];
};

// keeps `struct event` in the object's BTF (pylibbpf.typed.decoder looks it up by name)
const struct event *unused_event __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 25);
} rb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} perf SEC(".maps");

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

struct perf_loop {
	void *ctx;
};

static long emit_perf_one(__u64 i, void *data)
{
	struct perf_loop *loop = data;
	struct event e = { .seq = i };

	if (bpf_perf_event_output(loop->ctx, &perf, BPF_F_CURRENT_CPU, &e, sizeof(e)))
		dropped++;
	return 0;
}

SEC("raw_tp")
int emit_perf(struct bpf_raw_tracepoint_args *ctx)
{
	struct perf_loop loop = { ctx };

	bpf_loop(ctx->args[0], emit_perf_one, &loop, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
