/* A legacy program that lowers its privileges after its setup, then makes one call of each
 * kind; one line per call: "<step> <errno>" (0: the call worked).
 *
 * usage: privileges MODE UID CAPS MAP_O
 *   MODE  legacy: the legacy calls (run it under `python -m compat run`);
 *         linux: the Linux calls compat translates them into, made natively (the reference)
 *   UID   the uid and gid to switch to after the setup (65534: nobody; 0: stay root)
 *   CAPS  the capabilities to keep, a hex mask (effective and permitted; e.g. 0x8000000000 is
 *         CAP_BPF alone); raw capset, no libcap
 *   MAP_O the legacy `map` sample object (maps "map_fd" and "config")
 *
 * Credentials are per thread: before the process lowers its privileges, a second thread lowers
 * only its own effective capabilities to CAPS (raw capset) and creates a map
 * ("thread_map_create"), then the main thread, still root, does the same ("main_map_create").
 *
 * Setup, with the starting (root) privileges: an ARRAY and a HASH map, filled; in legacy mode a
 * program loaded with BPF_PROG_LOAD_EX (attached later); in linux mode the id of the
 * syscalls/sys_enter_getppid tracepoint (compat reads tracefs in the supervisor as root).
 * Map creation and the element commands are the same calls in both modes: the legacy layouts
 * are Linux's there.  PROG_LOAD_EX becomes BPF_PROG_LOAD of a TRACEPOINT program; PROG_ATTACH
 * of a syscall target becomes a new TRACEPOINT program load, perf_event_open of the tracepoint
 * (every process, cpu 0) and PERF_EVENT_IOC_SET_BPF. */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <pthread.h>
#include <linux/capability.h>
#include <linux/perf_event.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bpf.h"
#include "check.h"

#ifdef ZCORE
#define TARGET "kprobe$<linux_syscall::Syscall>::sys_getppid"
#else
#define TARGET "kprobe:<rcore::syscall::Syscall>::sys_getppid"
#endif

/* BPF_PROG_LOAD's leading fields (Linux's union bpf_attr; the kernel zero-fills the rest) */
struct linux_prog_load {
    uint32_t prog_type;
    uint32_t insn_cnt;
    uint64_t insns;
    uint64_t license;
    uint32_t log_level;
    uint32_t log_size;
    uint64_t log_buf;
    uint32_t kern_version;
    uint32_t prog_flags;
    char prog_name[16];
};

#define LINUX_BPF_PROG_LOAD 5
#define LINUX_PROG_TYPE_TRACEPOINT 5

static int report(const char *step, int rc)
{
    printf("%s %d\n", step, rc < 0 ? errno : 0);
    return rc;
}

/* BPF_PROG_LOAD of "r0 = 0; exit" as a TRACEPOINT program: what compat's loads amount to for
 * the kernel's privilege checks, which come before the verifier */
static int linux_prog_load(void)
{
    static const uint64_t insns[2] = {0x00000000000000b7ULL, 0x0000000000000095ULL};
    struct linux_prog_load attr;
    memset(&attr, 0, sizeof(attr));
    attr.prog_type = LINUX_PROG_TYPE_TRACEPOINT;
    attr.insn_cnt = 2;
    attr.insns = (uint64_t)(uintptr_t)insns;
    attr.license = (uint64_t)(uintptr_t)"GPL";
    return (int)syscall(SYS_bpf, LINUX_BPF_PROG_LOAD, &attr, sizeof(attr));
}

static int linux_attach(uint64_t tracepoint)
{
    int prog = linux_prog_load();
    if (prog < 0)
        return -1;
    struct perf_event_attr pe;
    memset(&pe, 0, sizeof(pe));
    pe.type = PERF_TYPE_TRACEPOINT;
    pe.size = sizeof(pe);
    pe.config = tracepoint;
    pe.sample_period = 1;
    pe.wakeup_events = 1;
    int event = (int)syscall(SYS_perf_event_open, &pe, -1, 0, -1, PERF_FLAG_FD_CLOEXEC);
    int rc = event < 0 ? -1 : ioctl(event, PERF_EVENT_IOC_SET_BPF, prog);
    int err = errno;
    if (event >= 0)
        close(event);
    close(prog);
    errno = err;
    return rc;
}

static uint64_t tracepoint_id(const char *name)
{
    char path[256];
    snprintf(path, sizeof(path), "/sys/kernel/tracing/events/syscalls/%s/id", name);
    FILE *f = fopen(path, "r");
    assert(f != NULL);
    unsigned long long id = 0;
    assert(fscanf(f, "%llu", &id) == 1);
    fclose(f);
    return id;
}

static void *thread_with_lower_caps(void *arg)
{
    uint64_t caps = *(uint64_t *)arg;
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    assert(syscall(SYS_capget, &header, data) == 0);
    data[0].effective = (uint32_t)caps & data[0].permitted;
    data[1].effective = (uint32_t)(caps >> 32) & data[1].permitted;
    assert(syscall(SYS_capset, &header, data) == 0);  /* this thread only */
    report("thread_map_create", bpf_create_map(BPF_MAP_TYPE_ARRAY, 4, 8, 4));
    return NULL;
}

static void lower_privileges(uid_t uid, uint64_t caps)
{
    if (uid != 0) {
        assert(prctl(PR_SET_KEEPCAPS, caps != 0, 0, 0, 0) == 0);
        assert(setgroups(0, NULL) == 0);
        assert(setresgid(uid, uid, uid) == 0);
        assert(setresuid(uid, uid, uid) == 0);
    }
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof(data));
    data[0].effective = data[0].permitted = (uint32_t)caps;
    data[1].effective = data[1].permitted = (uint32_t)(caps >> 32);
    assert(syscall(SYS_capset, &header, data) == 0);
    /* what the supervisor will read */
    FILE *status = fopen("/proc/self/status", "r");
    assert(status != NULL);
    char line[256];
    while (fgets(line, sizeof(line), status))
        if (strncmp(line, "CapEff:", 7) == 0 || strncmp(line, "Uid:", 4) == 0)
            printf("# %s", line);
    fclose(status);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    assert(argc == 5);
    int legacy = strcmp(argv[1], "legacy") == 0;
    assert(legacy || strcmp(argv[1], "linux") == 0);
    uid_t uid = (uid_t)strtoul(argv[2], NULL, 10);
    uint64_t caps = strtoull(argv[3], NULL, 16);

    /* setup, as root */
    uint32_t zero = 0, one = 1;
    uint64_t value = 7, out = 0, key = 5, next = 0;
    int array = bpf_create_map(BPF_MAP_TYPE_ARRAY, 4, 8, 4);
    int hash = bpf_create_map(BPF_MAP_TYPE_HASH, 8, 8, 16);
    int config = bpf_create_map(BPF_MAP_TYPE_ARRAY, 4, 4, 1);
    assert(array > 0 && hash > 0 && config > 0);
    assert(bpf_update_elem(array, &zero, &value, BPF_ANY) == 0);
    assert(bpf_update_elem(hash, &key, &value, BPF_ANY) == 0);
    uint32_t size = 0;
    void *elf = read_file(argv[4], &size);
    assert(size > 0);
    struct bpf_map_fd_entry maps[] = {{"map_fd", (uint32_t)array}, {"config", (uint32_t)config}};
    int prog = -1;
    uint64_t tracepoint = 0;
    if (legacy) {
        prog = bpf_prog_load_ex(elf, size, maps, 2);
        assert(prog > 0);
    } else {
        tracepoint = tracepoint_id("sys_enter_getppid");
    }

    pthread_t thread;
    assert(pthread_create(&thread, NULL, thread_with_lower_caps, &caps) == 0);
    assert(pthread_join(thread, NULL) == 0);
    report("main_map_create", bpf_create_map(BPF_MAP_TYPE_ARRAY, 4, 8, 4));

    lower_privileges(uid, caps);

    report("map_create_array", bpf_create_map(BPF_MAP_TYPE_ARRAY, 4, 8, 4));
    report("map_create_hash", bpf_create_map(BPF_MAP_TYPE_HASH, 8, 8, 16));
    /* the kernel checks the sizes before the privileges */
    report("map_create_no_entries", bpf_create_map(BPF_MAP_TYPE_ARRAY, 4, 8, 0));
    report("map_create_no_value", bpf_create_map(BPF_MAP_TYPE_HASH, 8, 0, 16));
    /* a map fd the program holds is its permission */
    report("update", bpf_update_elem(array, &one, &value, BPF_ANY));
    report("lookup", bpf_lookup_elem(array, &zero, &out));
    report("get_next_key", bpf_get_next_key(hash, &key, &next));  /* the last key: ENOENT */
    report("delete", bpf_delete_elem(hash, &key));
    /* errors of the loader's user-space steps come before any privilege check: not an ELF
     * (EINVAL), a map_array name the ELF lacks (ENOENT); natively the loader (libbpf) refuses
     * them before any bpf() call, so the linux mode reports those errnos as they are */
    struct bpf_map_fd_entry unknown[] = {{"no_such_map", (uint32_t)array}};
    if (legacy) {
        report("load_not_elf", bpf_prog_load_ex("not an ELF", 10, maps, 2));
        report("load_unknown_map", bpf_prog_load_ex(elf, size, unknown, 1));
    } else {
        printf("load_not_elf %d\nload_unknown_map %d\n", EINVAL, ENOENT);
    }
    if (legacy) {
        report("load", bpf_prog_load_ex(elf, size, maps, 2));
#ifdef ZCORE
        report("attach", bpf_prog_attach(TARGET, (uint32_t)strlen(TARGET), prog));
#else
        report("attach", bpf_prog_attach(TARGET, prog));
#endif
    } else {
        report("load", linux_prog_load());
        report("attach", linux_attach(tracepoint));
    }
    free(elf);
    printf("privileges done\n");
    return 0;
}
