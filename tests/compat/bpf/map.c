/* The legacy 'map' sample's shape: unchecked lookups through extern int map fds, {} printk,
 * bpf_get_current_comm's length passed on to bpf_trace_print_str.  Counts the calls of the
 * process whose tgid is in config[0]. */
#include "legacy_bpf.h"

extern int map_fd;
extern int config;

int map_prog(struct kprobe_bpf_ctx *ctx)
{
    u32 key = 0;
    u32 *want = bpf_map_lookup_elem(config, &key);
    if (*want != (u32)(bpf_get_current_pid_tgid() >> 32))
        return 0;
    u64 *value = bpf_map_lookup_elem(map_fd, &key);
    u64 updated = *value + 1;
    bpf_map_update_elem(map_fd, &key, &updated, 0);
    char fmt[] = "value = {}\n";
    bpf_trace_printk(fmt, sizeof(fmt), updated, 0, 0);
    char comm[16];
    int len = bpf_get_current_comm(comm, sizeof(comm));
    bpf_trace_print_str(comm, len);
    return 0;
}
