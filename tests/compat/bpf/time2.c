/* The legacy 'time2' sample's shape: kretprobe@exit computes the elapsed time, bumps
 * records[0] as a count and stores the sample at records[count]. */
#include "legacy_bpf.h"

extern int time_counters;
extern int records;
extern int config;

int time2(struct kprobe_bpf_ctx *ctx)
{
    u64 now = bpf_ktime_get_ns();
    u32 zero = 0;
    u32 *want = bpf_map_lookup_elem(config, &zero);
    if (*want != (u32)(bpf_get_current_pid_tgid() >> 32))
        return 0;
    u32 cpu = bpf_get_smp_processor_id();
    u64 *start = bpf_map_lookup_elem(time_counters, &cpu);
    u64 elapsed = now - *start;
    u64 *count = bpf_map_lookup_elem(records, &zero);
    u64 n = *count + 1;
    if (n >= 512)
        return 0;
    *count = n;
    u32 index = n;
    bpf_map_update_elem(records, &index, &elapsed, 0);
    char fmt[] = "elapsed {} ns, sample {}\n";
    bpf_trace_printk(fmt, sizeof(fmt), elapsed, n, 0);
    return 0;
}
