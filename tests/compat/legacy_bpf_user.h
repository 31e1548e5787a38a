/* The legacy user-side bpf.h (spec §2), written for compat's layout tests: the 32-byte
 * union bpf_attr of the rCore/zCore kernels and struct bpf_map_fd_entry. */
#ifndef LEGACY_BPF_USER_H
#define LEGACY_BPF_USER_H
#include <stdint.h>

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
    struct { /* BPF_PROG_ATTACH, rcore dialect */
        const char *target __attribute__((aligned(8)));
        uint32_t prog_fd;
    } rcore_attach;
    struct { /* BPF_PROG_ATTACH, zcore dialect */
        const char *target __attribute__((aligned(8)));
        uint32_t str_len;
        uint32_t prog_fd;
    } zcore_attach;
} __attribute__((aligned(8)));

#endif
