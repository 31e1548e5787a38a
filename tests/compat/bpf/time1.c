/* The legacy 'time1' sample's shape: kretprobe@entry stores ktime per CPU. */
#include "legacy_bpf.h"

extern int time_counters;
extern int config;

int time1(struct kprobe_bpf_ctx *ctx)
{
    u32 zero = 0;
    u32 *want = bpf_map_lookup_elem(config, &zero);
    if (*want != (u32)(bpf_get_current_pid_tgid() >> 32))
        return 0;
    u32 cpu = bpf_get_smp_processor_id();
    u64 *slot = bpf_map_lookup_elem(time_counters, &cpu);
    *slot = bpf_ktime_get_ns();
    return 0;
}
