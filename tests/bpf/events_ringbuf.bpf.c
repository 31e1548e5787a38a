// Ring buffer producer for tests/test_ringbuf.py, test_aio.py and the hardening tests.
// `emit` is a tc program run with BPF_PROG_TEST_RUN (see tests/ring_producer.py): each of the
// run's `repeat` rounds writes one event numbered by the global `seq`; every `discard_every`-th
// reservation is discarded instead of submitted, and a failed reservation (ring full) is counted
// in `dropped`.  Only what Linux 5.8 has: ring buffer helpers are open to every program type, and
// tc programs take a repeat count (a SEC("syscall") program with bpf_loop would need 5.17).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct event {
	__u64 seq;
	__u32 cpu;
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

__u64 produced, dropped, discarded, seq;
/* Knobs, set from Python between runs (in .data or .bss: tests look in both). */
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

SEC("tc")
int emit(struct __sk_buff *skb)
{
	struct event *e;
	__u64 n;

	if (variable) {
		char buf[64] = {};
		__u64 len;

		n = seq++;
		len = (9 + (n % 7) * 8) & 63;
		if (len < 9)
			return 0;
		__builtin_memcpy(buf, &n, sizeof(n));
		buf[8] = (char)len;
		if (bpf_ringbuf_output(ring(), buf, len, wakeup_flags))
			dropped++;
		else
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
	e->cpu = bpf_get_smp_processor_id();
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

char LICENSE[] SEC("license") = "GPL";
