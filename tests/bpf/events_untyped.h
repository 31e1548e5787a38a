/* The record of events_untyped.bpf.c: a fixed prefix and an args buffer sent only as far as
 * args_size (execsnoop's layout).  No global, map or function of the program names it, so it
 * is not in the object's BTF: pylibbpf.typed takes it from this header. */
#ifndef EVENTS_UNTYPED_H
#define EVENTS_UNTYPED_H

#define UNTYPED_ARGS 64

struct untyped_event {
	__u32 pid;
	__u32 args_size;
	char comm[16];
	char args[UNTYPED_ARGS];
};

#endif
