// The attach points of tests/test_attach_more.py: kprobe/uprobe multi-links and sessions,
// tcx, netfilter, and programs attached to a sockmap.  Each test loads only the programs it
// uses (the sections of newer libbpf releases are not even known to older ones).  Each program
// counts in its own slot of `counts`.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>

enum {
	K_KMULTI, K_KMULTI_COOKIE, K_KSESSION_HITS, K_UMULTI, K_UMULTI_COOKIE, K_USESSION_HITS,
	K_TCX, K_NETFILTER, K_SK_MSG, K_VERDICT, K_SLOTS
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, K_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 2);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} socks SEC(".maps");

const volatile int target_pid = 0;  /* kprobes: count only this process */
const volatile __u16 port = 0;      /* tcx: count only UDP to this port (host order) */
const volatile __u32 nf_len = 0;    /* netfilter: count only packets of this IP length */

static __always_inline void add(__u32 key, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&counts, &key);

	if (v)
		__sync_fetch_and_add(v, n);
}

static __always_inline int ours(void)
{
	return (bpf_get_current_pid_tgid() >> 32) == target_pid;
}

SEC("kprobe.multi")
int kmulti(struct pt_regs *ctx)
{
	if (!ours())
		return 0;
	add(K_KMULTI, 1);
	add(K_KMULTI_COOKIE, bpf_get_attach_cookie(ctx));
	return 0;
}

/* returning 0 asks for the return probe as well: two hits per call (bpf_session_is_return()
 * would tell them apart, but Linux 7.x changed that kfunc) */
SEC("kprobe.session")
int ksession(struct pt_regs *ctx)
{
	if (!ours())
		return 1;
	add(K_KSESSION_HITS, 1);
	return 0;
}

SEC("uprobe.multi")
int umulti(struct pt_regs *ctx)
{
	add(K_UMULTI, 1);
	add(K_UMULTI_COOKIE, bpf_get_attach_cookie(ctx));
	return 0;
}

SEC("uprobe.session")
int usession(struct pt_regs *ctx)
{
	add(K_USESSION_HITS, 1);
	return 0;  /* as ksession: two hits per call */
}

SEC("tcx/ingress")
int tcx_count(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);

	if ((void *)(udp + 1) <= end && eth->h_proto == bpf_htons(0x0800) &&
	    ip->protocol == 17 && ip->ihl == 5 && udp->dest == bpf_htons(port))
		add(K_TCX, 1);
	return TCX_NEXT;
}

SEC("netfilter")
int nf_count(struct bpf_nf_ctx *ctx)
{
	if (ctx->skb->len == nf_len)
		add(K_NETFILTER, 1);
	return 1;  /* NF_ACCEPT */
}

SEC("sk_msg")
int msg_count(struct sk_msg_md *msg)
{
	add(K_SK_MSG, 1);
	return SK_PASS;
}

SEC("sk_skb/stream_verdict")
int verdict_count(struct __sk_buff *skb)
{
	add(K_VERDICT, 1);
	return SK_PASS;
}

char LICENSE[] SEC("license") = "GPL";
