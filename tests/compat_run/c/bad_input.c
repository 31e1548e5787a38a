/* Garbage pointers and lengths in legacy calls: each gets the legacy kernel's errno and the
 * supervisor keeps serving.  usage: bad_input MAP_O */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bpf.h"
#include "check.h"

#define GARBAGE ((void *)0xdead0000UL)

static int load(void *prog, uint32_t size, struct bpf_map_fd_entry *maps, uint32_t count)
{
    return bpf_prog_load_ex(prog, size, maps, count);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    assert(argc == 2);
    long page = sysconf(_SC_PAGESIZE);
    /* one readable page followed by an inaccessible one */
    char *area = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert(area != MAP_FAILED);
    assert(mprotect(area + page, page, PROT_NONE) == 0);
    char *edge = area + page;

    /* the attr itself */
    EXPECT_ERR(sys_bpf(BPF_MAP_CREATE, NULL, 32), EFAULT);
    EXPECT_ERR(sys_bpf(BPF_PROG_LOAD_EX, GARBAGE, 32), EFAULT);
    EXPECT_ERR(sys_bpf(BPF_PROG_ATTACH, (union bpf_attr *)(edge - 16), 32), EFAULT);
    printf("attr: ok\n");

    /* maps */
    EXPECT_ERR(bpf_create_map(7, 4, 8, 1), EINVAL);
    int map = bpf_create_map(BPF_MAP_TYPE_ARRAY, 4, 8, 1);
    assert(map > 0);
    uint32_t key = 0;
    uint64_t value = 5;
    EXPECT_ERR(bpf_update_elem(map, GARBAGE, &value, BPF_ANY), EFAULT);
    EXPECT_ERR(bpf_update_elem(map, &key, edge - 4, BPF_ANY), EFAULT);  /* value crosses */
    EXPECT_ERR(bpf_update_elem(999, &key, &value, BPF_ANY), EBADF);
    EXPECT_ERR(bpf_update_elem(0, &key, &value, BPF_ANY), EINVAL);      /* stdin: not a map */
    EXPECT_ERR(bpf_lookup_elem(map, GARBAGE, &value), EFAULT);
    EXPECT_ERR(bpf_lookup_elem(map, &key, GARBAGE), EFAULT);
    printf("maps: ok\n");

    /* BPF_PROG_LOAD_EX */
    uint32_t size;
    char *elf = read_file(argv[1], &size);
    struct bpf_map_fd_entry maps[] = {{"map_fd", (uint32_t)map}, {"config", (uint32_t)map}};
    EXPECT_ERR(load(NULL, size, maps, 2), EFAULT);
    EXPECT_ERR(load(GARBAGE, size, maps, 2), EFAULT);
    EXPECT_ERR(load(elf, 0xffffffffu, maps, 2), E2BIG);
    memcpy(edge - 64, elf, 64);
    EXPECT_ERR(load(edge - 64, size, maps, 2), EFAULT);  /* the ELF runs into the guard page */
    EXPECT_ERR(load(elf, size, GARBAGE, 2), EFAULT);
    EXPECT_ERR(load(elf, size, NULL, 2), EFAULT);
    EXPECT_ERR(load(elf, size, maps, 100000), E2BIG);
    struct bpf_map_fd_entry bad_name[] = {{GARBAGE, (uint32_t)map}, {"config", (uint32_t)map}};
    EXPECT_ERR(load(elf, size, bad_name, 2), EFAULT);
    memset(edge - 8, 'x', 8);  /* a name with no NUL before the guard page */
    struct bpf_map_fd_entry unterminated[] = {{edge - 8, (uint32_t)map}, {"config", (uint32_t)map}};
    EXPECT_ERR(load(elf, size, unterminated, 2), EFAULT);
    struct bpf_map_fd_entry closed[] = {{"map_fd", 999}, {"config", (uint32_t)map}};
    EXPECT_ERR(load(elf, size, closed, 2), EBADF);
    struct bpf_map_fd_entry missing[] = {{"map_fd", (uint32_t)map}, {"nosuch", (uint32_t)map}};
    EXPECT_ERR(load(elf, size, missing, 2), ENOENT);
    EXPECT_ERR(load("not an ELF at all", 17, maps, 2), EINVAL);
    int prog = load(elf, size, maps, 2);
    assert(prog > 0);
    printf("load: ok\n");

    /* BPF_PROG_ATTACH: prog fd (ENOENT) -> target pointer (EFAULT) -> grammar (EINVAL) ->
     * symbol (ENOENT) */
    EXPECT_ERR(bpf_prog_attach("kprobe:<rcore::syscall::Syscall>::sys_getppid", 999), ENOENT);
    EXPECT_ERR(bpf_prog_attach("kprobe:<rcore::syscall::Syscall>::sys_getppid", map), ENOENT);
    EXPECT_ERR(bpf_prog_attach(GARBAGE, 999), ENOENT);
    EXPECT_ERR(bpf_prog_attach(NULL, prog), EFAULT);
    EXPECT_ERR(bpf_prog_attach(GARBAGE, prog), EFAULT);
    EXPECT_ERR(bpf_prog_attach("uprobe:main", prog), EINVAL);
    EXPECT_ERR(bpf_prog_attach("no separator", prog), EINVAL);
    EXPECT_ERR(bpf_prog_attach("kprobe:<rcore::syscall::Syscall>::sys_nosuch", prog), ENOENT);
    printf("attach: ok\n");

    /* not legacy commands: the kernel answers them itself */
    union bpf_attr zero;
    memset(&zero, 0, sizeof(zero));
    /* Linux's own answer to an empty BPF_PROG_LOAD, never the rCore EINVAL: E2BIG (insn_cnt 0)
     * on recent kernels, EFAULT (the NULL license is read first) on 6.1 */
    errno = 0;
    int load_rc = sys_bpf(BPF_PROG_LOAD, &zero, sizeof(zero));
    if (load_rc != -1 || (errno != E2BIG && errno != EFAULT)) {
        fprintf(stderr, "%s:%d: empty BPF_PROG_LOAD returned %d errno %d, expected the "
                "kernel's E2BIG or EFAULT\n", __FILE__, __LINE__, load_rc, errno);
        abort();
    }
    EXPECT_ERR(sys_bpf(12345, &zero, sizeof(zero)), EINVAL);
    printf("passthrough: ok\n");

    /* a full fd table: the fd cannot be installed, the program gets EMFILE */
    struct rlimit saved, tight;
    assert(getrlimit(RLIMIT_NOFILE, &saved) == 0);
    int lowest = dup(0);
    assert(lowest > 0 && close(lowest) == 0);
    tight = saved;
    tight.rlim_cur = (rlim_t)lowest;
    assert(setrlimit(RLIMIT_NOFILE, &tight) == 0);
    EXPECT_ERR(bpf_create_map(BPF_MAP_TYPE_ARRAY, 4, 8, 1), EMFILE);
    EXPECT_ERR(load(elf, size, maps, 2), EMFILE);
    assert(setrlimit(RLIMIT_NOFILE, &saved) == 0);
    printf("fd table full: ok\n");

    /* the supervisor survived all of it */
    value = 42;
    assert(bpf_update_elem(map, &key, &value, BPF_ANY) == 0);
    value = 0;
    assert(bpf_lookup_elem(map, &key, &value) == 0 && value == 42);
    assert(bpf_create_map(BPF_MAP_TYPE_HASH, 4, 4, 8) > 0);
    printf("bad_input passed\n");
    return 0;
}
