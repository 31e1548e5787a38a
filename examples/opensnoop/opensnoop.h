/* SPDX-License-Identifier: GPL-2.0 */
/* opensnoop: the record the BPF side sends and the user side reads (shared, as in libbpf-tools) */
#ifndef OPENSNOOP_H
#define OPENSNOOP_H

#define TASK_COMM_LEN 16
#define NAME_MAX 255

struct event {
	__u64 ts;                   /* bpf_ktime_get_ns() at the return */
	__u32 pid;
	__u32 uid;
	__s32 ret;                  /* the fd, or -errno */
	__s32 flags;                /* open flags as the caller passed them */
	__u32 mode;
	char comm[TASK_COMM_LEN];
	char fname[NAME_MAX];
};

#endif
