/* The smallest valid BPF object: tests/test_ffi_layouts.py opens it (no load, no root) to check
 * that libbpf reads bpf_object_open_opts where pylibbpf's ctypes layout writes it. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

SEC("tracepoint/syscalls/sys_enter_getpid")
int layout_probe_prog(void *ctx)
{
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
