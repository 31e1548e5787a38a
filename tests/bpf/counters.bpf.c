// Tracepoint counters, every map kind the core tests use, and global data of every section.
//
// Its programs are of three types (tp, raw_tp, tp_btf) that not every kernel build loads
// (tp_btf needs the kernel's BTF, a security policy may refuse one): a test autoloads only
// the programs it uses (tests/attach_support.py autoload_only), so the map and global-data
// tests depend on none of them.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "refuse.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} by_pid SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} percpu SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} percpu_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 128);
	__type(key, __u64);
	__type(value, __u64);
} lru SEC(".maps");

const volatile __u32 target_pid = 0;      /* .rodata: set before load */
const volatile __u64 increment = 1;       /* .rodata */
__u64 hits = 0;                           /* .bss */
__u64 last_ts = 0;                        /* .bss */
__u32 magic = 0xC0FFEE;                   /* .data */
char tag[8] = "pylibbp";                  /* .data */
__u64 custom_hits SEC(".data.custom") = 7;  /* custom data section */

static __always_inline int is_target(void)
{
	return target_pid == 0 || (bpf_get_current_pid_tgid() >> 32) == target_pid;
}

SEC("tp/syscalls/sys_enter_getpid")
int count_getpid(void *ctx)
{
	__u32 key = 0;
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	__u64 *v, one = 1;

#ifdef REFUSE_TRACEPOINT
	VERIFIER_REJECTS(counts);
#endif
	if (!is_target())
		return 0;
	v = bpf_map_lookup_elem(&counts, &key);
	if (v)
		__sync_fetch_and_add(v, increment);
	v = bpf_map_lookup_elem(&by_pid, &pid);
	if (v)
		__sync_fetch_and_add(v, 1);
	else
		bpf_map_update_elem(&by_pid, &pid, &one, BPF_NOEXIST);
	v = bpf_map_lookup_elem(&percpu, &key);
	if (v)
		*v += 1;
	hits += increment;
	custom_hits += 1;
	last_ts = bpf_ktime_get_ns();
	return 0;
}

SEC("tp/syscalls/sys_enter_getppid")
int count_getppid(void *ctx)
{
	__u32 key = 1;
	__u64 *v;

#ifdef REFUSE_TRACEPOINT
	VERIFIER_REJECTS(counts);
#endif
	if (!is_target())
		return 0;
	v = bpf_map_lookup_elem(&counts, &key);
	if (v)
		__sync_fetch_and_add(v, 1);
	return 0;
}

SEC("raw_tp/sys_enter")
int count_raw_enter(struct bpf_raw_tracepoint_args *ctx)
{
	__u32 key = 2;
	__u64 *v;

#ifdef REFUSE_RAW_TP
	VERIFIER_REJECTS(counts);
#endif
	if (!is_target() || ctx->args[1] != 39 /* __NR_getpid on x86_64 */)
		return 0;
	v = bpf_map_lookup_elem(&counts, &key);
	if (v)
		__sync_fetch_and_add(v, 1);
	return 0;
}

SEC("tp_btf/sys_enter")
int BPF_PROG_count_btf(void *ctx)
{
	__u32 key = 3;
	__u64 *v;
	struct pt_regs *regs;
	long id;

#ifdef REFUSE_TP_BTF
	VERIFIER_REJECTS(counts);
#endif
	if (!is_target())
		return 0;
	id = ((__u64 *)ctx)[1];
	if (id != 39)
		return 0;
	v = bpf_map_lookup_elem(&counts, &key);
	if (v)
		__sync_fetch_and_add(v, 1);
	(void)regs;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
