/* A uprobe/USDT target for tests/test_attach_uprobe.py.
 *
 * Prints "ready", waits for one line on stdin (so the test can attach first), then calls
 * pylibbpf_target(i) and fires the USDT probe pylibbpf:tick(i, sum) for i in 0..N-1, prints
 * the sum of the return values and exits.  N is argv[1] (default 1).
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/sdt.h>

__attribute__((noinline, noclone, used)) int pylibbpf_target(int x)
{
	asm volatile("" ::: "memory");
	return 2 * x + 1;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 1;
	long sum = 0;
	char line[16];

	printf("ready\n");
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		return 1;
	for (int i = 0; i < n; i++) {
		sum += pylibbpf_target(i);
		DTRACE_PROBE2(pylibbpf, tick, i, sum);
	}
	printf("%ld\n", sum);
	fflush(stdout);
	return 0;
}
