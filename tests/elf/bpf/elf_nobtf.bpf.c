// Compiled without -g: no .BTF, no .BTF.ext; legacy-free so libbpf opens it.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

int hits;

static __attribute__((noinline)) int twice(int x)
{
	return x * 2;
}

SEC("socket")
int count(struct __sk_buff *skb)
{
	hits = twice(hits) + 1;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
