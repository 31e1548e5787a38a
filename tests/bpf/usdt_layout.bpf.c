// SPDX-License-Identifier: GPL-2.0
/* What an object built with the "other" usdt.bpf.h holds: the two maps libbpf's USDT support
 * fills, with the per-argument spec size of SPEC_ARG_BYTES (16 before libbpf 1.7, 24 from it).
 * The test picks the size the loaded libbpf does not write. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#ifndef SPEC_ARG_BYTES
#define SPEC_ARG_BYTES 16
#endif

struct spec {
	char args[12][SPEC_ARG_BYTES];
	__u64 usdt_cookie;
	short arg_cnt;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 256);
	__type(key, int);
	__type(value, struct spec);
} __bpf_usdt_specs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, long);
	__type(value, __u32);
} __bpf_usdt_ip_to_spec_id SEC(".maps");

__u64 hits;

SEC("usdt")
int on_tick(void *ctx)
{
	__sync_fetch_and_add(&hits, 1);
	return 0;
}

#ifdef HELPER
SEC("usdt/" HELPER ":pylibbpf:tick")
int auto_tick(void *ctx)
{
	__sync_fetch_and_add(&hits, 1);
	return 0;
}
#endif

char LICENSE[] SEC("license") = "GPL";
