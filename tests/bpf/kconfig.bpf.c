// Externs resolved by libbpf at load: Kconfig values (from the running kernel, or from the
// `kconfig` open option) and LINUX_KERNEL_VERSION.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

extern unsigned int LINUX_KERNEL_VERSION __kconfig;
extern int CONFIG_PYLIBBPF_TEST_NUMBER __kconfig __weak;
extern bool CONFIG_BPF_SYSCALL __kconfig __weak;

__u32 seen_version = 0;
__s32 seen_number = -1;
__u32 seen_bpf_syscall = 0;

SEC("tp/syscalls/sys_enter_getpid")
int read_kconfig(void *ctx)
{
	seen_version = LINUX_KERNEL_VERSION;
	seen_number = CONFIG_PYLIBBPF_TEST_NUMBER;
	seen_bpf_syscall = CONFIG_BPF_SYSCALL;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
