/* Prints the legacy attr layout as "field offset size" lines for test_attr_layout.py. */
#include <stddef.h>
#include <stdio.h>
#include "legacy_bpf_user.h"

#define F(label, type, member) \
    printf("%s %zu %zu\n", label, offsetof(type, member), sizeof(((type *)0)->member))

int main(void)
{
    printf("sizeof_attr 0 %zu\n", sizeof(union bpf_attr));
    printf("alignof_attr 0 %zu\n", _Alignof(union bpf_attr));
    printf("sizeof_entry 0 %zu\n", sizeof(struct bpf_map_fd_entry));
    F("map_create.map_type", union bpf_attr, map_type);
    F("map_create.key_size", union bpf_attr, key_size);
    F("map_create.value_size", union bpf_attr, value_size);
    F("map_create.max_entries", union bpf_attr, max_entries);
    F("map_elem.map_fd", union bpf_attr, map_fd);
    F("map_elem.key", union bpf_attr, key);
    F("map_elem.value", union bpf_attr, value);
    F("map_elem.next_key", union bpf_attr, next_key);
    F("map_elem.flags", union bpf_attr, flags);
    F("prog_load_ex.prog", union bpf_attr, prog);
    F("prog_load_ex.prog_size", union bpf_attr, prog_size);
    F("prog_load_ex.map_array_len", union bpf_attr, map_array_len);
    F("prog_load_ex.map_array", union bpf_attr, map_array);
    F("rcore_attach.target", union bpf_attr, rcore_attach.target);
    F("rcore_attach.prog_fd", union bpf_attr, rcore_attach.prog_fd);
    F("zcore_attach.target", union bpf_attr, zcore_attach.target);
    F("zcore_attach.str_len", union bpf_attr, zcore_attach.str_len);
    F("zcore_attach.prog_fd", union bpf_attr, zcore_attach.prog_fd);
    F("entry.name", struct bpf_map_fd_entry, name);
    F("entry.fd", struct bpf_map_fd_entry, fd);
    return 0;
}
