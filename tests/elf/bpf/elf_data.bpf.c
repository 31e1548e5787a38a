// Global data of every kind, kconfig and ksym externs, map-in-map, pinning, numa, flags.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, u32);
	__type(value, u32);
	__uint(max_entries, 4);
} inner_a SEC(".maps"), inner_b SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, u32);
	__array(values, struct inner);
} outer SEC(".maps") = {
	.values = { &inner_a, &inner_b },
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, 8);
	__type(key, int);
	__array(values, struct {
		__uint(type, BPF_MAP_TYPE_HASH);
		__uint(max_entries, 16);
		__type(key, u64);
		__type(value, u64);
	});
} hash_outer SEC(".maps");

struct event {
	u32 pid;
	u8 flags : 3;
	u8 kind : 5;
	char comm[16];
	union {
		u64 as_u64;
		u32 as_u32[2];
	} payload;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(key_size, 8);
	__uint(value_size, sizeof(struct event));
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__uint(numa_node, 0);
} pinned_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, u32);
	__type(value, struct event);
	__uint(max_entries, 1);
} scratch SEC(".maps");

int counter = 7;
u64 totals[4] = {1, 2, 3, 4};
const volatile u32 target_pid = 42;
const volatile char greeting[8] = "hello";
u64 zeroed;
struct event last_event;
int custom_data SEC(".data.custom") = 5;
const volatile int custom_ro SEC(".rodata.extra") = 9;

extern u32 LINUX_KERNEL_VERSION __kconfig;
extern int CONFIG_HZ __kconfig __weak;
extern const int bpf_prog_active __ksym __weak;

enum color { RED, GREEN = 5, BLUE = -1 };
enum big { HUGE = 0x100000000ULL };
volatile enum color favourite = GREEN;
volatile enum big bigval = HUGE;
typedef float real_t;
volatile real_t ratio = 1.5f;

SEC("tp/syscalls/sys_enter_getpid")
int use_data(void *ctx)
{
	u32 key = 0;
	struct event *e;
	void *in;

	if ((bpf_get_current_pid_tgid() >> 32) != target_pid)
		return 0;
	counter += custom_data + custom_ro + greeting[0];
	totals[1] += LINUX_KERNEL_VERSION + CONFIG_HZ;
	zeroed++;
	e = bpf_map_lookup_elem(&scratch, &key);
	if (e) {
		e->pid = counter;
		e->payload.as_u64 = favourite + bigval + *(volatile u32 *)&ratio;
		last_event = *e;
	}
	in = bpf_map_lookup_elem(&outer, &key);
	if (in)
		bpf_map_lookup_elem(in, &key);
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (e) {
		e->pid = (long)&bpf_prog_active;
		bpf_ringbuf_submit(e, 0);
	}
	bpf_map_update_elem(&pinned_hash, &zeroed, &last_event, BPF_ANY);
	bpf_map_lookup_elem(&hash_outer, &counter);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
