// SPDX-License-Identifier: MIT
/* The C side of pylibbpf's benchmarks (bench/run.py builds and runs it): the same work as the
 * Python side, through libbpf.  usage:
 *   bench maps N | batch N | ringbuf OBJ N REPS | openload OBJ REPS
 * Each line printed is "name seconds count". */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	return level == LIBBPF_WARN ? vfprintf(stderr, fmt, ap) : 0;
}

static void die(const char *what)
{
	fprintf(stderr, "bench: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void map_ops(int type, const char *name, __u32 n)
{
	int fd = bpf_map_create(type, name, 4, 8, n, NULL);
	__u64 value = 1, sum = 0;
	double t0, t1, t2;

	if (fd < 0)
		die("bpf_map_create");
	t0 = now();
	for (__u32 k = 0; k < n; k++)
		if (bpf_map_update_elem(fd, &k, &value, BPF_ANY))
			die("update");
	t1 = now();
	for (__u32 k = 0; k < n; k++) {
		if (bpf_map_lookup_elem(fd, &k, &value))
			die("lookup");
		sum += value;
	}
	t2 = now();
	printf("%s.update %.6f %u\n%s.lookup %.6f %u\n", name, t1 - t0, n, name, t2 - t1,
	       (unsigned)(sum == n ? n : 0));
}

static void batch(__u32 n)
{
	int fd = bpf_map_create(BPF_MAP_TYPE_HASH, "big", 4, 8, n, NULL);
	__u32 *keys = calloc(n, 4), done = 0, total = 0, out, cur, next, walked = 0;
	__u64 *values = calloc(n, 8), v;
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	void *in = NULL;
	double t0;
	int err;

	if (fd < 0 || !keys || !values)
		die("setup");
	for (__u32 i = 0; i < n; i++)
		keys[i] = i, values[i] = i;
	while (done < n) {
		__u32 count = n - done < 65536 ? n - done : 65536;

		if (bpf_map_update_batch(fd, keys + done, values + done, &count, &opts))
			die("update_batch");
		done += count;
	}
	t0 = now();
	do {
		__u32 count = 65536;

		if (total + count > n)
			count = n - total ? n - total : 1;
		err = bpf_map_lookup_batch(fd, in, &out, keys + (total < n ? total : 0),
					   values + (total < n ? total : 0), &count, &opts);
		if (err && errno != ENOENT)
			die("lookup_batch");
		total += count;
		in = &out;
	} while (!err);
	printf("hash.lookup_batch %.6f %u\n", now() - t0, total);
	t0 = now();
	for (err = bpf_map_get_next_key(fd, NULL, &next); !err;
	     err = bpf_map_get_next_key(fd, &cur, &next)) {
		bpf_map_lookup_elem(fd, &next, &v);
		cur = next;
		walked++;
	}
	printf("hash.get_next_key %.6f %u\n", now() - t0, walked);
}

static long consumed;

static int on_sample(void *ctx, void *data, size_t size)
{
	consumed++;
	return 0;
}

static void ringbuf(const char *path, __u32 n, int reps)
{
	struct bpf_object *obj = bpf_object__open_file(path, NULL);
	struct ring_buffer *rb;
	struct { __u32 count; } args = { n };
	LIBBPF_OPTS(bpf_test_run_opts, run, .ctx_in = &args, .ctx_size_in = sizeof(args));
	double best = 1e9;

	if (!obj || bpf_object__load(obj))
		die("load bench_rb");
	rb = ring_buffer__new(bpf_object__find_map_fd_by_name(obj, "rb"), on_sample, NULL, NULL);
	if (!rb)
		die("ring_buffer__new");
	for (int r = 0; r < reps; r++) {
		double t0;

		if (bpf_prog_test_run_opts(bpf_program__fd(bpf_object__find_program_by_name(obj, "emit")), &run))
			die("test_run");
		consumed = 0;
		t0 = now();
		ring_buffer__consume(rb);
		t0 = now() - t0;
		if (consumed != n)
			fprintf(stderr, "bench: consumed %ld of %u\n", consumed, n);
		if (t0 < best)
			best = t0;
	}
	printf("ringbuf.consume %.6f %u\n", best, n);
	ring_buffer__free(rb);
	bpf_object__close(obj);
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void openload(const char *path, int reps)
{
	double *t = calloc(reps, sizeof(*t));

	for (int i = 0; i < reps; i++) {
		double t0 = now();
		struct bpf_object *obj = bpf_object__open_file(path, NULL);

		if (!obj || bpf_object__load(obj))
			die("open+load");
		bpf_object__close(obj);
		t[i] = now() - t0;
	}
	qsort(t, reps, sizeof(*t), cmp);
	printf("openload %.6f %d\n", t[reps / 2], reps);
}

int main(int argc, char **argv)
{
	libbpf_set_print(quiet);
	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc < 3)
		return 2;
	if (!strcmp(argv[1], "maps")) {
		map_ops(BPF_MAP_TYPE_ARRAY, "array", atoi(argv[2]));
		map_ops(BPF_MAP_TYPE_HASH, "hash", atoi(argv[2]));
	} else if (!strcmp(argv[1], "batch")) {
		batch(atoi(argv[2]));
	} else if (!strcmp(argv[1], "ringbuf") && argc == 5) {
		ringbuf(argv[2], atoi(argv[3]), atoi(argv[4]));
	} else if (!strcmp(argv[1], "openload") && argc == 4) {
		openload(argv[2], atoi(argv[3]));
	} else {
		return 2;
	}
	return 0;
}
