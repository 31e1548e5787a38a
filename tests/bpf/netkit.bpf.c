// netkit programs of tests/test_netkit.py.  A netkit device runs its programs on the packets it
// transmits, before they reach its peer: the primary's on the way out of the primary's
// namespace, the peer's on the way out of the peer's.  Each program counts the IPv4 UDP packets
// it sees in its own slot of `counts`; the two ordering programs also note when they ran.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* enum netkit_action (uapi if_link.h); vmlinux.h has it only from a kernel built with netkit */
enum { NK_NEXT = -1, NK_PASS = 0, NK_DROP = 2 };

enum { K_PRIMARY, K_PEER, K_ORDER_A, K_ORDER_B, K_CLOCK, K_SLOTS };

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, K_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

const volatile int verdict = NK_PASS;  /* what nk_primary and nk_peer return */

static __always_inline int is_udp(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);

	return (void *)(ip + 1) <= end && eth->h_proto == bpf_htons(0x0800) && ip->protocol == 17;
}

static __always_inline void add(__u32 key)
{
	__u64 *v = bpf_map_lookup_elem(&counts, &key);

	if (v)
		__sync_fetch_and_add(v, 1);
}

/* the first time it runs, a program takes the next tick of the clock: who ran first */
static __always_inline void stamp(__u32 key)
{
	__u32 clock_key = K_CLOCK;
	__u64 *slot = bpf_map_lookup_elem(&counts, &key);
	__u64 *clock = bpf_map_lookup_elem(&counts, &clock_key);

	if (slot && clock && !*slot) {
		*clock += 1;
		*slot = *clock;
	}
}

SEC("netkit/primary")
int nk_primary(struct __sk_buff *skb)
{
	if (!is_udp(skb))
		return NK_PASS;
	add(K_PRIMARY);
	return verdict;
}

SEC("netkit/peer")
int nk_peer(struct __sk_buff *skb)
{
	if (!is_udp(skb))
		return NK_PASS;
	add(K_PEER);
	return verdict;
}

SEC("netkit/primary")
int nk_order_a(struct __sk_buff *skb)
{
	if (is_udp(skb))
		stamp(K_ORDER_A);
	return NK_NEXT;
}

SEC("netkit/primary")
int nk_order_b(struct __sk_buff *skb)
{
	if (is_udp(skb))
		stamp(K_ORDER_B);
	return NK_NEXT;
}

char LICENSE[] SEC("license") = "GPL";
