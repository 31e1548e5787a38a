// Ring buffer producers for tests/test_ringbuf.py, test_aio.py and the benchmarks.
// `emit` (SEC("syscall"), run with BPF_PROG_TEST_RUN) writes `count` events with consecutive
// sequence numbers; every `discard_every`-th reservation is discarded instead of submitted, and
// a failed reservation (ring full) is counted in `dropped`.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct event {
	__u64 seq;
	__u32 pid;
	__u32 size;
	char payload[48];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} rb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 16);
} rb2 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} tiny SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_USER_RINGBUF);
	__uint(max_entries, 1 << 16);
} urb SEC(".maps");

__u64 produced, dropped, discarded, seq;
__u64 user_total, user_count, user_bad;
/* Knobs, set from Python between runs (in .data or .bss: tests look in both). */
volatile __u32 count = 16;
volatile __u32 discard_every = 0;
volatile __u32 wakeup_flags = 0;
volatile __u32 variable = 0;    /* 1: event i carries 8 + (i % 7) * 8 + 1 bytes */
volatile __u32 target = 0;      /* 0: rb, 1: rb2, 2: tiny */

static void *ring(void)
{
	if (target == 1)
		return &rb2;
	if (target == 2)
		return &tiny;
	return &rb;
}

static long emit_one(__u64 i, void *ctx)
{
	struct event *e;
	__u64 n;

	if (variable) {
		char buf[64] = {};
		__u64 len = (9 + (i % 7) * 8) & 63;

		if (len < 9)
			return 0;
		n = seq++;
		__builtin_memcpy(buf, &n, sizeof(n));
		buf[8] = (char)len;
		if (bpf_ringbuf_output(ring(), buf, len, wakeup_flags)) {
			dropped++;
			return 0;
		}
		produced++;
		return 0;
	}
	e = bpf_ringbuf_reserve(ring(), sizeof(*e), 0);
	if (!e) {
		dropped++;
		return 0;
	}
	n = seq++;
	e->seq = n;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->size = sizeof(*e);
	__builtin_memset(e->payload, 0, sizeof(e->payload));
	e->payload[0] = 'a' + (n % 26);
	if (discard_every && (n % discard_every) == discard_every - 1) {
		bpf_ringbuf_discard(e, wakeup_flags);
		discarded++;
		return 0;
	}
	bpf_ringbuf_submit(e, wakeup_flags);
	produced++;
	return 0;
}

SEC("syscall")
int emit(void *ctx)
{
	bpf_loop(count, emit_one, NULL, 0);
	return 0;
}

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
