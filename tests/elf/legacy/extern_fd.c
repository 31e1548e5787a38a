// A legacy latte-c style program: map fds are `extern int` symbols (no BTF, no SEC()), which
// libbpf refuses to open; pylibbpf.elf.read_elf(strict=False) must still read it.
typedef unsigned long long u64;

extern int map_fd;
extern int other_fd;

static void *(*bpf_map_lookup_elem)(int fd, const void *key) = (void *)1;
static long (*bpf_trace_printk)(const char *fmt, int size, ...) = (void *)6;

int prog(void *ctx)
{
	int key = 0;
	u64 *v = bpf_map_lookup_elem(map_fd, &key);
	u64 *w = bpf_map_lookup_elem(other_fd, &key);
	char fmt[] = "v = {}\n";

	bpf_trace_printk(fmt, sizeof(fmt), *v + *w);
	return 0;
}
