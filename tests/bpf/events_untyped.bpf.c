// Records whose type is not in the object's BTF (built through a local pointer), of variable
// length (bpf_ringbuf_output of the prefix plus args_size bytes), plus typed maps (hash,
// per-CPU hash, array) and globals for pylibbpf.typed's views.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "events_untyped.h"

struct pair_key {
	__u32 id;
	char tag[4];
};

struct stats {
	__u64 calls;
	_Bool seen;
	__s16 delta;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 16);
} rb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct pair_key);
	__type(value, struct stats);
} pairs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, struct stats);
} percpu SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} slots SEC(".maps");

const volatile _Bool enabled = 1;
const volatile __u8 small = 3;
__s32 counter;

char buf[sizeof(struct untyped_event)];

SEC("tp/syscalls/sys_enter_getpid")
int emit(void *ctx)
{
	struct untyped_event *e = (struct untyped_event *)buf;
	__u32 n = 6;

	if (!enabled)
		return 0;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->args_size = n;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	__builtin_memcpy(e->args, "ab\0cd", 6);
	counter += small;
	bpf_ringbuf_output(&rb, e, __builtin_offsetof(struct untyped_event, args) + n, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
