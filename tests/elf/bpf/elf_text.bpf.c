// Entry programs living in .text only? No: one socket program plus callbacks by address.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

static long cb(u32 index, void *ctx)
{
	*(int *)ctx += index;
	return 0;
}

SEC("tp/syscalls/sys_enter_getpid")
int loop_user(void *ctx)
{
	int total = 0;

	bpf_loop(10, cb, &total, 0);
	return total;
}

char LICENSE[] SEC("license") = "GPL";
