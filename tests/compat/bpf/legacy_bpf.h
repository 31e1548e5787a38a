/* A legacy-style (latte-c rcore-user) BPF header, written for the compat tests.
 * Helpers take a map *fd* (an int), trace_printk uses {} placeholders, and the program
 * context is the legacy kprobe context (spec §6, §8). No libbpf headers. */
#ifndef LEGACY_BPF_H
#define LEGACY_BPF_H

typedef unsigned char u8;
typedef unsigned int u32;
typedef int s32;
typedef unsigned long long u64;
typedef long long s64;

#define NULL ((void *)0)

static void *(*bpf_map_lookup_elem)(int fd, const void *key) = (void *)1;
static s64 (*bpf_map_update_elem)(int fd, const void *key, const void *value, u64 flags) = (void *)2;
static s64 (*bpf_map_delete_elem)(int fd, const void *key) = (void *)3;
static s64 (*bpf_probe_read)(void *dst, u32 size, const void *src) = (void *)4;
static u64 (*bpf_ktime_get_ns)(void) = (void *)5;
static s64 (*bpf_trace_printk)(const char *fmt, u32 fmt_size, u64 a, u64 b, u64 c) = (void *)6;
static u32 (*bpf_get_smp_processor_id)(void) = (void *)8;
static u64 (*bpf_get_current_pid_tgid)(void) = (void *)14;
static s64 (*bpf_get_current_comm)(char *buf, u32 size) = (void *)16;

#define bpf_trace_print_str(s, len) bpf_trace_printk((s), (len), 0, 0, 0)

struct kprobe_bpf_ctx {
    u64 ptype;      /* 0 kprobe, 1 kretprobe@entry, 2 kretprobe@exit */
    u64 paddr;      /* probed address */
    u64 regs[32];   /* RISC-V x0..x31: a0 = regs[10] */
    u64 sstatus;
    u64 sepc;
};

#define REG_A0 10

#endif
