// SPDX-License-Identifier: GPL-2.0
// Maps only, filled from user space by bench/export_scrape.py: what one scrape of
// `pylibbpf export` costs for 10 k series.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct flow {
	__u32 saddr;
	__u16 dport;
	__u16 pad;
};

struct hist {
	__u64 slots[26];
	__u64 total;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct flow);
	__type(value, __u64);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u64);
} percpu_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, struct hist);
} hists SEC(".maps");

char LICENSE[] SEC("license") = "GPL";
