// Objects that fail to load, one way each (tests/test_load_errors.py): every variant is this
// file built with one -D flag, so each failure is libbpf's or the kernel's own, not a mock.
//   NO_MAX_ENTRIES  a hash map declared without max_entries: its creation fails
//   BAD_CORE        a CO-RE read of a field no kernel has: the relocation fails
//   BAD_KSYM        a kfunc extern the kernel does not have: libbpf cannot resolve it
//   BAD_KCONFIG     a CONFIG_ extern that is not in the kernel's configuration
//   BAD_TARGET      fentry on a function that does not exist: no BTF attach target
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
#ifndef NO_MAX_ENTRIES
	__uint(max_entries, 16);
#endif
	__type(key, __u32);
	__type(value, __u64);
} start SEC(".maps");

#ifdef BAD_CORE
struct task_struct___pylibbpf {
	int pylibbpf_no_such_field;
} __attribute__((preserve_access_index));
#endif

#ifdef BAD_KSYM
extern void pylibbpf_no_such_kfunc(void) __ksym;
#endif

#ifdef BAD_KCONFIG
extern int CONFIG_PYLIBBPF_NO_SUCH_OPTION __kconfig;
#endif

#ifdef BAD_TARGET
SEC("fentry/pylibbpf_no_such_function")
int on_entry(void *ctx)
{
	return 0;
}
#endif

SEC("tp/syscalls/sys_enter_getpid")
int on_getpid(void *ctx)
{
	__u32 key = 0;
	__u64 one = 1;

#ifdef BAD_CORE
	struct task_struct___pylibbpf *task = (void *)bpf_get_current_task();

	one = BPF_CORE_READ(task, pylibbpf_no_such_field);
#endif
#ifdef BAD_KSYM
	pylibbpf_no_such_kfunc();
#endif
#ifdef BAD_KCONFIG
	one = CONFIG_PYLIBBPF_NO_SUCH_OPTION;
#endif
	bpf_map_update_elem(&start, &key, &one, BPF_ANY);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
