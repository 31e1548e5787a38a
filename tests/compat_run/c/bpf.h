/* A legacy-style (latte-c rcore-user) eBPF user library, written for the compat run tests from
 * the layouts of the legacy interface: syscall(SYS_bpf, cmd, &attr, sizeof attr) with the
 * 32-byte union bpf_attr, BPF_PROG_LOAD_EX = 1000 and the legacy BPF_PROG_ATTACH layout.
 * Build with -DZCORE for the zCore dialect (attach takes str_len). No Linux bpf headers. */
#ifndef LEGACY_USER_BPF_H
#define LEGACY_USER_BPF_H
#include <stdint.h>

enum bpf_cmd {
    BPF_MAP_CREATE = 0,
    BPF_MAP_LOOKUP_ELEM = 1,
    BPF_MAP_UPDATE_ELEM = 2,
    BPF_MAP_DELETE_ELEM = 3,
    BPF_MAP_GET_NEXT_KEY = 4,
    BPF_PROG_LOAD = 5,
    BPF_PROG_ATTACH = 8,
    BPF_PROG_DETACH = 9,
    BPF_PROG_LOAD_EX = 1000,
};

enum bpf_map_type {
    BPF_MAP_TYPE_UNSPEC = 0,
    BPF_MAP_TYPE_HASH = 1,
    BPF_MAP_TYPE_ARRAY = 2,
};

#define BPF_ANY 0
#define BPF_NOEXIST 1
#define BPF_EXIST 2

struct bpf_map_fd_entry {
    const char *name;
    uint32_t fd;
};

union bpf_attr {
    struct { /* BPF_MAP_CREATE */
        uint32_t map_type;
        uint32_t key_size;
        uint32_t value_size;
        uint32_t max_entries;
    };
    struct { /* BPF_MAP_*_ELEM, BPF_MAP_GET_NEXT_KEY */
        uint32_t map_fd;
        uint64_t key __attribute__((aligned(8)));
        union {
            uint64_t value __attribute__((aligned(8)));
            uint64_t next_key __attribute__((aligned(8)));
        };
        uint64_t flags;
    };
    struct { /* BPF_PROG_LOAD_EX */
        uint64_t prog;
        uint32_t prog_size;
        uint32_t map_array_len;
        struct bpf_map_fd_entry *map_array __attribute__((aligned(8)));
    };
    struct { /* BPF_PROG_ATTACH, BPF_PROG_DETACH */
        const char *target __attribute__((aligned(8)));
#ifdef ZCORE
        uint32_t str_len;
#endif
        uint32_t prog_fd;
    };
} __attribute__((aligned(8)));

_Static_assert(sizeof(union bpf_attr) == 32, "the legacy attr is 32 bytes");

int sys_bpf(int cmd, union bpf_attr *attr, uint32_t size);
int bpf_create_map(enum bpf_map_type map_type, int key_size, int value_size, int max_entries);
int bpf_lookup_elem(int fd, const void *key, void *value);
int bpf_update_elem(int fd, const void *key, const void *value, uint64_t flags);
int bpf_delete_elem(int fd, const void *key);
int bpf_get_next_key(int fd, const void *key, void *next_key);
int bpf_prog_load_ex(void *prog, uint32_t prog_size, struct bpf_map_fd_entry *map_array,
                     uint32_t map_array_len);
#ifdef ZCORE
int bpf_prog_attach(const char *target, uint32_t str_len, int fd);
#else
int bpf_prog_attach(const char *target, int fd);
#endif
int bpf_prog_detach(int fd);

#endif
