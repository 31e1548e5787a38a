// Network programs for tests/test_attach_net.py and tests/test_links.py: XDP, tc, cgroup_skb,
// socket filter and sk_lookup.  Each counts the UDP packets to the .rodata `port` in its own
// slot of `counts`, so traffic the test did not send is never counted.
//
// Each test autoloads only the programs it uses (open_object(programs=...) in
// tests/attach_support.py), so a program type one kernel build refuses fails no unrelated test.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "refuse.h"
#include <bpf/bpf_endian.h>

#define ETH_P_IP 0x0800
#define IPPROTO_UDP_ 17
#define TC_ACT_OK_ 0
#define TC_ACT_SHOT_ 2

enum { K_XDP, K_XDP2, K_TC, K_CG, K_CG2, K_SOCK, K_LOOKUP, K_SLOTS = 8 };

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, K_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

const volatile __u16 port = 0; /* host byte order */

static __always_inline void bump(__u32 key)
{
	__u64 *v = bpf_map_lookup_elem(&counts, &key);

	if (v)
		__sync_fetch_and_add(v, 1);
}

/* Is [data, end) an IPv4 UDP packet to `port`?  `l3` says whether data starts at the IP header. */
static __always_inline int udp_to_port(void *data, void *end, int l3)
{
	struct iphdr *ip = data;
	struct udphdr *udp;

	if (!l3) {
		struct ethhdr *eth = data;

		if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
			return 0;
		ip = (void *)(eth + 1);
	}
	if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_UDP_ || ip->ihl != 5)
		return 0;
	udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > end)
		return 0;
	return udp->dest == bpf_htons(port);
}

SEC("xdp")
int xdp_count(struct xdp_md *ctx)
{
#ifdef REFUSE_XDP
	VERIFIER_REJECTS(counts);
#endif
	if (udp_to_port((void *)(long)ctx->data, (void *)(long)ctx->data_end, 0))
		bump(K_XDP);
	return XDP_PASS;
}

SEC("xdp")
int xdp_count2(struct xdp_md *ctx)
{
#ifdef REFUSE_XDP
	VERIFIER_REJECTS(counts);
#endif
	if (udp_to_port((void *)(long)ctx->data, (void *)(long)ctx->data_end, 0))
		bump(K_XDP2);
	return XDP_PASS;
}

/* For test_run: drops a packet whose first byte is 0xff; otherwise swaps the two MAC
 * addresses, writes the ingress ifindex into the first byte after the Ethernet header and
 * passes it. */
SEC("xdp")
int xdp_rewrite(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	unsigned char tmp[6];
	__u8 *after;

#ifdef REFUSE_XDP
	VERIFIER_REJECTS(counts);
#endif
	if ((void *)(eth + 1) + 1 > end)
		return XDP_ABORTED;
	if (eth->h_dest[0] == 0xff)
		return XDP_DROP;
	__builtin_memcpy(tmp, eth->h_dest, 6);
	__builtin_memcpy(eth->h_dest, eth->h_source, 6);
	__builtin_memcpy(eth->h_source, tmp, 6);
	after = (void *)(eth + 1);
	*after = ctx->ingress_ifindex;
	return XDP_PASS;
}

SEC("tc")
int tc_count(struct __sk_buff *skb)
{
#ifdef REFUSE_TC
	VERIFIER_REJECTS(counts);
#endif
	if (udp_to_port((void *)(long)skb->data, (void *)(long)skb->data_end, 0))
		bump(K_TC);
	/* for test_run: report the length through cb[0], drop when the mark says so */
	skb->cb[0] = skb->len;
	return skb->mark == 0xdead ? TC_ACT_SHOT_ : TC_ACT_OK_;
}

SEC("cgroup_skb/egress")
int cg_egress(struct __sk_buff *skb)
{
#ifdef REFUSE_CGROUP
	VERIFIER_REJECTS(counts);
#endif
	if (udp_to_port((void *)(long)skb->data, (void *)(long)skb->data_end, 1))
		bump(K_CG);
	return 1;
}

SEC("cgroup_skb/egress")
int cg_egress2(struct __sk_buff *skb)
{
#ifdef REFUSE_CGROUP
	VERIFIER_REJECTS(counts);
#endif
	if (udp_to_port((void *)(long)skb->data, (void *)(long)skb->data_end, 1))
		bump(K_CG2);
	return 1;
}

/* Counts every packet; drops those whose last byte is 'D', keeps the others whole. */
SEC("socket")
int sock_filter(struct __sk_buff *skb)
{
	__u8 last = 0;

#ifdef REFUSE_SOCKET_FILTER
	VERIFIER_REJECTS(counts);
#endif
	bump(K_SOCK);
	if (skb->len && bpf_skb_load_bytes(skb, skb->len - 1, &last, 1) == 0 && last == 'D')
		return 0;
	return skb->len;
}

SEC("sk_lookup")
int lookup_count(struct bpf_sk_lookup *ctx)
{
#ifdef REFUSE_SK_LOOKUP
	VERIFIER_REJECTS(counts);
#endif
	if (ctx->protocol == IPPROTO_UDP_ && ctx->local_port == port)
		bump(K_LOOKUP);
	return SK_PASS;
}

char LICENSE[] SEC("license") = "GPL";
