/* The legacy 'context' sample's shape: ptype, paddr and a0..a7 read from the context and
 * stored in dump[0..9] (and printed).  With -DBY_INDEX the registers are read in a loop by
 * index (variable-offset context reads); without it, one constant-offset read each. */
#include "legacy_bpf.h"

extern int dump;
extern int config;

int context_prog(struct kprobe_bpf_ctx *ctx)
{
    u32 key = 0;
    u32 *want = bpf_map_lookup_elem(config, &key);
    if (*want != (u32)(bpf_get_current_pid_tgid() >> 32))
        return 0;
    u64 value = ctx->ptype;
    bpf_map_update_elem(dump, &key, &value, 0);
    key = 1;
    value = ctx->paddr;
    bpf_map_update_elem(dump, &key, &value, 0);
#ifdef BY_INDEX
#pragma clang loop unroll(disable)
    for (u32 i = 0; i < 8; i++) {
        u64 reg = ctx->regs[REG_A0 + i];
        u32 slot = 2 + i;
        bpf_map_update_elem(dump, &slot, &reg, 0);
        char fmt[] = "a{} = {}\n";
        bpf_trace_printk(fmt, sizeof(fmt), i, reg, 0);
    }
#else
#define DUMP(i) do { \
        u64 reg = ctx->regs[REG_A0 + (i)]; \
        u32 slot = 2 + (i); \
        bpf_map_update_elem(dump, &slot, &reg, 0); \
    } while (0)
    DUMP(0); DUMP(1); DUMP(2); DUMP(3); DUMP(4); DUMP(5); DUMP(6); DUMP(7);
    char fmt[] = "a1 = {}, a7 = {}\n";
    bpf_trace_printk(fmt, sizeof(fmt), ctx->regs[REG_A0 + 1], ctx->regs[REG_A0 + 7], 0);
#endif
    return 0;
}
