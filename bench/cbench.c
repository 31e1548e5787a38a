// SPDX-License-Identifier: MIT
/* The C contender of pylibbpf's benchmarks: the same loops as the Python contenders, through
 * the same libbpf, built as a shared library (bench/_build.py) and called once per loop
 * through ctypes from the benchmark's own process, so that C and Python take turns on the same
 * machine state.  Each loop times itself (CLOCK_MONOTONIC, as Python's perf_counter) and
 * returns nanoseconds, or -errno.  Keys are the __u32 values 0..n-1. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

static long long now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* a value buffer large enough for a per-CPU value of any benchmark (8 bytes per CPU) */
#define VALUE_MAX 65536
static unsigned char value_buf[VALUE_MAX];

long long bench_lookup(int fd, unsigned n, unsigned value_bytes)
{
	long long t0;

	if (value_bytes > VALUE_MAX)
		return -EINVAL;
	t0 = now();
	for (__u32 k = 0; k < n; k++)
		if (bpf_map_lookup_elem(fd, &k, value_buf))
			return -errno;
	return now() - t0;
}

long long bench_update(int fd, unsigned n, unsigned value_bytes)
{
	long long t0;

	if (value_bytes > VALUE_MAX)
		return -EINVAL;
	memset(value_buf, 1, value_bytes);
	t0 = now();
	for (__u32 k = 0; k < n; k++)
		if (bpf_map_update_elem(fd, &k, value_buf, BPF_ANY))
			return -errno;
	return now() - t0;
}

long long bench_delete(int fd, unsigned n)
{
	long long t0 = now();

	for (__u32 k = 0; k < n; k++)
		if (bpf_map_delete_elem(fd, &k))
			return -errno;
	return now() - t0;
}

/* Store keys 0..n-1 (value: the key, zero-extended) in batches; not timed. */
int bench_fill(int fd, unsigned n, unsigned value_bytes)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	__u32 *keys = calloc(n ? n : 1, sizeof(*keys));
	unsigned char *values = calloc(n ? n : 1, value_bytes);
	unsigned done = 0;
	int err = 0;

	if (!keys || !values) {
		err = -ENOMEM;
		goto out;
	}
	for (__u32 i = 0; i < n; i++) {
		keys[i] = i;
		memcpy(values + (size_t)i * value_bytes, &i, value_bytes < 4 ? value_bytes : 4);
	}
	while (done < n) {
		__u32 count = n - done < 65536 ? n - done : 65536;

		if (bpf_map_update_batch(fd, keys + done, values + (size_t)done * value_bytes,
					 &count, &opts)) {
			err = -errno;
			goto out;
		}
		done += count;
	}
out:
	free(keys);
	free(values);
	return err;
}

/* Every entry of a map with BPF_MAP_LOOKUP_BATCH into buffers allocated for the call, as a
 * tool dumping a map would; *entries gets the count. */
long long bench_dump(int fd, unsigned max_entries, unsigned key_size, unsigned value_bytes,
		     unsigned batch, unsigned *entries)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	long long t0 = now();
	size_t room = (size_t)max_entries + batch;
	unsigned char *keys = malloc(room * key_size), *values = malloc(room * value_bytes);
	unsigned char in[8], out[8];
	unsigned total = 0;
	int err;

	if (!keys || !values) {
		free(keys);
		free(values);
		return -ENOMEM;
	}
	do {
		__u32 count = batch;

		err = bpf_map_lookup_batch(fd, total ? in : NULL, out, keys + (size_t)total * key_size,
					   values + (size_t)total * value_bytes, &count, &opts);
		if (err && errno != ENOENT) {
			err = -errno;
			free(keys);
			free(values);
			return err;
		}
		total += count;
		memcpy(in, out, sizeof(in));
	} while (!err && total < room - batch);
	free(keys);
	free(values);
	*entries = total;
	return now() - t0;
}

/* A BPF_F_MMAPABLE array's values, mapped once (bench_mmap_read reads them). */
void *bench_mmap(int fd, size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ, MAP_SHARED, fd, 0);

	return p == MAP_FAILED ? NULL : p;
}

void bench_munmap(void *p, size_t bytes)
{
	munmap(p, bytes);
}

/* Copy n u64 values out of a mapped array into out[], as a reader of a histogram would. */
long long bench_mmap_read(const volatile __u64 *p, unsigned n, __u64 *out)
{
	long long t0 = now();

	for (unsigned i = 0; i < n; i++)
		out[i] = p[i];
	return now() - t0;
}

static long samples;

static int on_ring_sample(void *ctx, void *data, size_t size)
{
	samples++;
	return 0;
}

static void on_perf_sample(void *ctx, int cpu, void *data, __u32 size)
{
	samples++;
}

struct ring_buffer *bench_ring_new(int fd)
{
	return ring_buffer__new(fd, on_ring_sample, NULL, NULL);
}

long long bench_ring_consume(struct ring_buffer *rb, long *count)
{
	long long t0 = now();
	int err;

	samples = 0;
	err = ring_buffer__consume(rb);
	t0 = now() - t0;
	*count = samples;
	return err < 0 ? err : t0;
}

struct perf_buffer *bench_perf_new(int fd, unsigned pages)
{
	return perf_buffer__new(fd, pages, on_perf_sample, NULL, NULL, NULL);
}

long long bench_perf_consume(struct perf_buffer *pb, long *count)
{
	long long t0 = now();
	int err;

	samples = 0;
	err = perf_buffer__consume(pb);
	t0 = now() - t0;
	*count = samples;
	return err < 0 ? err : t0;
}

static int silent(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	return 0;
}

/* open + load + close, reps times, with a print function that drops every message (libbpf's
 * print function is process-wide: the previous one, pylibbpf's, is put back afterwards). */
long long bench_openload(const char *path, unsigned reps)
{
	libbpf_print_fn_t previous = libbpf_set_print(silent);
	long long t0 = now();
	int err = 0;

	for (unsigned i = 0; i < reps && !err; i++) {
		struct bpf_object *obj = bpf_object__open_file(path, NULL);

		if (!obj) {
			err = -errno;
			break;
		}
		err = bpf_object__load(obj);
		bpf_object__close(obj);
	}
	t0 = now() - t0;
	libbpf_set_print(previous);
	return err ? err : t0;
}
