// A minimal TCP congestion control as a struct_ops map, for tests/test_struct_ops.py.
//
// Each callback adds one to its slot of `calls`; the algorithm itself keeps the congestion
// window as it is (no growth) and halves it on loss, which is enough for loopback traffic.
// Built twice: as SEC(".struct_ops") (one map, `ca`), and with -DLINK as
// SEC(".struct_ops.link") (libbpf >= 1.2): `ca` and `ca_b`, both registering the algorithm
// under the same name (what BPF_LINK_UPDATE of a congestion control needs), `ca_b` counting in
// the slots after `ca`'s.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#ifndef CA_NAME
#define CA_NAME "pylibbpf_ca"
#endif

enum { INIT, CONG_AVOID, CWND_EVENT, RELEASE, SLOTS };

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} calls SEC(".maps");

static __always_inline void count(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&calls, &slot);

	if (v)
		__sync_fetch_and_add(v, 1);
}

static __always_inline struct tcp_sock *tcp_of(struct sock *sk)
{
	return (struct tcp_sock *)sk;
}

SEC("struct_ops/ca_init")
void BPF_PROG(ca_init, struct sock *sk)
{
	count(INIT);
}

SEC("struct_ops/ca_cong_avoid")
void BPF_PROG(ca_cong_avoid, struct sock *sk, __u32 ack, __u32 acked)
{
	count(CONG_AVOID);
}

SEC("struct_ops/ca_cwnd_event")
void BPF_PROG(ca_cwnd_event, struct sock *sk, enum tcp_ca_event event)
{
	count(CWND_EVENT);
}

SEC("struct_ops/ca_release")
void BPF_PROG(ca_release, struct sock *sk)
{
	count(RELEASE);
}

SEC("struct_ops/ca_ssthresh")
__u32 BPF_PROG(ca_ssthresh, struct sock *sk)
{
	__u32 half = tcp_of(sk)->snd_cwnd >> 1;

	return half > 2 ? half : 2;
}

SEC("struct_ops/ca_undo_cwnd")
__u32 BPF_PROG(ca_undo_cwnd, struct sock *sk)
{
	return tcp_of(sk)->snd_cwnd;
}

#ifdef LINK
SEC("struct_ops/ca_b_cong_avoid")
void BPF_PROG(ca_b_cong_avoid, struct sock *sk, __u32 ack, __u32 acked)
{
	count(SLOTS + CONG_AVOID);
}

SEC("struct_ops/ca_b_init")
void BPF_PROG(ca_b_init, struct sock *sk)
{
	count(SLOTS + INIT);
}

#define OPS_SEC ".struct_ops.link"
#else
#define OPS_SEC ".struct_ops"
#endif

SEC(OPS_SEC)
struct tcp_congestion_ops ca = {
	.init = (void *)ca_init,
	.cong_avoid = (void *)ca_cong_avoid,
	.cwnd_event = (void *)ca_cwnd_event,
	.release = (void *)ca_release,
	.ssthresh = (void *)ca_ssthresh,
	.undo_cwnd = (void *)ca_undo_cwnd,
	.name = CA_NAME,
};

#ifdef LINK
SEC(OPS_SEC)
struct tcp_congestion_ops ca_b = {
	.init = (void *)ca_b_init,
	.cong_avoid = (void *)ca_b_cong_avoid,
	.ssthresh = (void *)ca_ssthresh,
	.undo_cwnd = (void *)ca_undo_cwnd,
	.name = CA_NAME,
};
#endif

char LICENSE[] SEC("license") = "GPL";
