// Ring buffers whose event types pylibbpf.typed infers from the programs: `samples` gets
// `struct exec_sample` records through bpf_ringbuf_reserve, `notes` gets `struct pyl_note` through
// bpf_ringbuf_output.  The unused pointers keep both types in the object's BTF (clang emits
// BTF for types the program's globals and functions use; a type used only by a local
// variable would not be there).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct exec_sample {
	__u64 seq;
	__u32 pid;
	char comm[16];
	__u32 flags;
};

struct pyl_note {
	__u32 code;
	__u32 value;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 16);
} samples SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 16);
} notes SEC(".maps");

const struct exec_sample *unused_sample __attribute__((unused));
const struct pyl_note *unused_note __attribute__((unused));

__u64 seq;

SEC("tp/syscalls/sys_enter_getpid")
int emit(void *ctx)
{
	struct exec_sample *s;
	struct pyl_note n = { .code = 7 };

	s = bpf_ringbuf_reserve(&samples, sizeof(*s), 0);
	if (!s)
		return 0;
	s->seq = ++seq;
	s->pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(s->comm, sizeof(s->comm));
	s->flags = 3;
	bpf_ringbuf_submit(s, 0);
	n.value = (__u32)seq;
	bpf_ringbuf_output(&notes, &n, sizeof(n), 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
