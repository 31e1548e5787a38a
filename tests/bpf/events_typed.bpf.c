// Values of every BTF kind, written by the BPF side, for tests/test_typed.py: `fill` stores one
// `struct all` in a hash map (under a struct key), in a ring buffer record and in .bss.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

enum color { RED = 1, GREEN = 2, BLUE = 40, NEG = -3 };
#if __clang_major__ >= 15
enum big { SMALL = 1, HUGE = 0x123456789aLL };   /* BTF_KIND_ENUM64 */
#else
enum big { SMALL = 1, HUGE = 2 };
#endif
typedef unsigned int my_u32;

struct inner {
	__u16 a;
	__s8 b;
	char tag[5];
};

union word {
	__u32 value;
	__u8 bytes[4];
};

struct all {
	__u8 u8;
	__s8 s8;
	__u16 u16;
	__s16 s16;
	__u32 u32;
	__s32 s32;
	__u64 u64;
	__s64 s64;
	_Bool flag;
	_Bool off;
	enum color color;
	enum color unnamed_color;
	enum color neg;
	enum big big;
	char name[16];
	__u32 arr[3];
	__s16 grid[2][3];
	struct inner inner;
	struct inner inners[2];
	union word word;
	const volatile my_u32 cv;
	unsigned int bf1 : 3;
	int bf2 : 5;
	unsigned int bf3 : 24;
	void *ptr;
	float f;
	double d;
	struct {
		__u32 x;
		__u32 y;
	};
	union {
		__u64 raw;
		__u32 half;
	};
};

struct flow_key {
	__u32 id;
	__u16 port;
	char comm[6];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, struct flow_key);
	__type(value, struct all);
} table SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 16);
} records SEC(".maps");

struct all g_all;
__u32 g_counter = 5;
const volatile enum color g_color = GREEN;

static void fill(struct all *s)
{
	__u32 fbits = 0x3fc00000;               /* 1.5f */
	__u64 dbits = 0xc004000000000000ULL;    /* -2.5 */

	__builtin_memset(s, 0, sizeof(*s));
	s->u8 = 250;
	s->s8 = -100;
	s->u16 = 65000;
	s->s16 = -30000;
	s->u32 = 4000000000U;
	s->s32 = -2000000000;
	s->u64 = 0xfedcba9876543210ULL;
	s->s64 = -1234567890123LL;
	s->flag = 1;
	s->color = BLUE;
	s->unnamed_color = (enum color)7;
	s->neg = NEG;
	s->big = HUGE;
	__builtin_memcpy(s->name, "hello", 6);
	s->arr[0] = 1;
	s->arr[1] = 2;
	s->arr[2] = 3;
	s->grid[0][0] = -1;
	s->grid[1][2] = 6;
	s->inner.a = 7;
	s->inner.b = -8;
	__builtin_memcpy(s->inner.tag, "abcde", 5);   /* no NUL: fills the array */
	s->inners[1].a = 9;
	__builtin_memcpy(s->inners[1].tag, "z", 2);
	s->word.value = 0x04030201;
	*(volatile my_u32 *)&s->cv = 77;
	s->bf1 = 5;
	s->bf2 = -9;
	s->bf3 = 0xabcdef;
	s->ptr = (void *)0xffff888812345678ULL;
	__builtin_memcpy(&s->f, &fbits, 4);
	__builtin_memcpy(&s->d, &dbits, 8);
	s->x = 11;
	s->y = 12;
	s->raw = 0x1111222233334444ULL;
}

SEC("tc")  /* run with BPF_PROG_TEST_RUN; tc programs can since Linux 4.12 */
int fill_all(struct __sk_buff *skb)
{
	struct flow_key k = { .id = 42, .port = 8080 };
	struct all *r;

	__builtin_memcpy(k.comm, "bash", 5);
	fill(&g_all);
	bpf_map_update_elem(&table, &k, &g_all, BPF_ANY);
	r = bpf_ringbuf_reserve(&records, sizeof(*r), 0);
	if (!r)
		return 1;
	fill(r);
	bpf_ringbuf_submit(r, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
