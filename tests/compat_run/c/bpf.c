/* The legacy user library: each call fills the 32-byte attr and makes the raw syscall, as
 * rcore-user's bpf.c did.  On Linux, glibc's syscall() returns -1 and sets errno. */
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bpf.h"

int sys_bpf(int cmd, union bpf_attr *attr, uint32_t size)
{
    return (int)syscall(SYS_bpf, cmd, attr, size);
}

int bpf_create_map(enum bpf_map_type map_type, int key_size, int value_size, int max_entries)
{
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.map_type = map_type;
    attr.key_size = key_size;
    attr.value_size = value_size;
    attr.max_entries = max_entries;
    return sys_bpf(BPF_MAP_CREATE, &attr, sizeof(attr));
}

static int map_op(int cmd, int fd, const void *key, void *value, uint64_t flags)
{
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.map_fd = fd;
    attr.key = (uint64_t)(uintptr_t)key;
    attr.value = (uint64_t)(uintptr_t)value;
    attr.flags = flags;
    return sys_bpf(cmd, &attr, sizeof(attr));
}

int bpf_lookup_elem(int fd, const void *key, void *value)
{
    return map_op(BPF_MAP_LOOKUP_ELEM, fd, key, value, 0);
}

int bpf_update_elem(int fd, const void *key, const void *value, uint64_t flags)
{
    return map_op(BPF_MAP_UPDATE_ELEM, fd, key, (void *)value, flags);
}

int bpf_delete_elem(int fd, const void *key)
{
    return map_op(BPF_MAP_DELETE_ELEM, fd, key, 0, 0);
}

int bpf_get_next_key(int fd, const void *key, void *next_key)
{
    return map_op(BPF_MAP_GET_NEXT_KEY, fd, key, next_key, 0);
}

int bpf_prog_load_ex(void *prog, uint32_t prog_size, struct bpf_map_fd_entry *map_array,
                     uint32_t map_array_len)
{
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.prog = (uint64_t)(uintptr_t)prog;
    attr.prog_size = prog_size;
    attr.map_array_len = map_array_len;
    attr.map_array = map_array;
    return sys_bpf(BPF_PROG_LOAD_EX, &attr, sizeof(attr));
}

#ifdef ZCORE
int bpf_prog_attach(const char *target, uint32_t str_len, int fd)
{
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.target = target;
    attr.str_len = str_len;
    attr.prog_fd = fd;
    return sys_bpf(BPF_PROG_ATTACH, &attr, sizeof(attr));
}
#else
int bpf_prog_attach(const char *target, int fd)
{
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.target = target;
    attr.prog_fd = fd;
    return sys_bpf(BPF_PROG_ATTACH, &attr, sizeof(attr));
}
#endif

int bpf_prog_detach(int fd)
{
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.prog_fd = fd;
    return sys_bpf(BPF_PROG_DETACH, &attr, sizeof(attr));
}
