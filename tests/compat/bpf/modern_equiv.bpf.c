// SPDX-License-Identifier: GPL-2.0
/* Modern libbpf equivalents of the legacy test programs (map.c, time1.c/time2.c), on the same
 * syscall tracepoints, for the kernel comparison tests. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, u32);
    __type(value, u32);
} target_pid SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, u32);
    __type(value, u64);
} counts SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 64);
    __type(key, u32);
    __type(value, u64);
} time_counters SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 512);
    __type(key, u32);
    __type(value, u64);
} records SEC(".maps");

static __always_inline bool ours(void)
{
    u32 zero = 0;
    u32 *want = bpf_map_lookup_elem(&target_pid, &zero);
    return want && *want == (u32)(bpf_get_current_pid_tgid() >> 32);
}

SEC("tp/syscalls/sys_enter_clone")
int count_clone(void *ctx)
{
    u32 zero = 0;
    if (!ours())
        return 0;
    u64 *value = bpf_map_lookup_elem(&counts, &zero);
    if (value)
        __sync_fetch_and_add(value, 1);
    return 0;
}

SEC("tp/syscalls/sys_enter_getppid")
int enter_getppid(void *ctx)
{
    u32 cpu = bpf_get_smp_processor_id();
    if (!ours())
        return 0;
    u64 *slot = bpf_map_lookup_elem(&time_counters, &cpu);
    if (slot)
        *slot = bpf_ktime_get_ns();
    return 0;
}

SEC("tp/syscalls/sys_exit_getppid")
int exit_getppid(void *ctx)
{
    u64 now = bpf_ktime_get_ns();
    u32 zero = 0, cpu = bpf_get_smp_processor_id();
    if (!ours())
        return 0;
    u64 *start = bpf_map_lookup_elem(&time_counters, &cpu);
    u64 *count = bpf_map_lookup_elem(&records, &zero);
    if (!start || !count || *count + 1 >= 512)
        return 0;
    u64 n = *count + 1;
    *count = n;
    u32 index = n;
    u64 elapsed = now - *start;
    bpf_map_update_elem(&records, &index, &elapsed, 0);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
