/* The legacy user-side map tests (bpf_test.c's shape): ARRAY and HASH create, update,
 * lookup, get_next_key, delete, with the legacy kernel's rules.  Prints the errnos where the
 * legacy kernel and Linux differ, so the caller can check the strict-errno option. */
#include <stdint.h>
#include <string.h>

#include "bpf.h"
#include "check.h"

static void test_array(void)
{
    int fd = bpf_create_map(BPF_MAP_TYPE_ARRAY, sizeof(uint32_t), sizeof(uint64_t), 4);
    assert(fd > 0);
    for (uint32_t i = 0; i < 4; i++) {
        uint64_t v = 100 * i;
        assert(bpf_update_elem(fd, &i, &v, BPF_ANY) == 0);
    }
    uint32_t key = 2;
    uint64_t value = 0;
    assert(bpf_lookup_elem(fd, &key, &value) == 0 && value == 200);
    value = 201;  /* legacy ARRAY updates ignore their flags */
    assert(bpf_update_elem(fd, &key, &value, BPF_NOEXIST) == 0);
    value = 0;
    assert(bpf_lookup_elem(fd, &key, &value) == 0 && value == 201);
    key = 4;
    errno = 0;
    assert(bpf_update_elem(fd, &key, &value, BPF_ANY) == -1);
    printf("array update past the end: errno %d\n", errno);
    EXPECT_ERR(bpf_lookup_elem(fd, &key, &value), LEGACY(ENOENT));
    key = 1;
    EXPECT_ERR(bpf_delete_elem(fd, &key), LEGACY(EINVAL));  /* ARRAY elements cannot be deleted */
    uint32_t next = 99;
    assert(bpf_get_next_key(fd, NULL, &next) == 0 && next == 0);
    assert(bpf_get_next_key(fd, &key, &next) == 0 && next == 2);
    key = 3;
    EXPECT_ERR(bpf_get_next_key(fd, &key, &next), LEGACY(ENOENT));
    key = 1000;  /* a missing key: the first key */
    assert(bpf_get_next_key(fd, &key, &next) == 0 && next == 0);
    printf("array ok\n");
}

static void test_hash(void)
{
    int fd = bpf_create_map(BPF_MAP_TYPE_HASH, sizeof(uint32_t), sizeof(uint64_t), 3);
    assert(fd > 0);
    uint32_t keys[] = {10, 20, 30};
    for (int i = 0; i < 3; i++) {
        uint64_t v = keys[i] * 7;
        assert(bpf_update_elem(fd, &keys[i], &v, BPF_NOEXIST) == 0);
    }
    uint64_t value = 1;
    uint32_t key = 40;
    errno = 0;
    assert(bpf_update_elem(fd, &key, &value, BPF_ANY) == -1);
    printf("hash update on a full map: errno %d\n", errno);
    EXPECT_ERR(bpf_update_elem(fd, &keys[0], &value, BPF_NOEXIST), LEGACY(EEXIST));
    EXPECT_ERR(bpf_update_elem(fd, &key, &value, BPF_EXIST), LEGACY(ENOENT));
    EXPECT_ERR(bpf_update_elem(fd, &keys[0], &value, 7), LEGACY(EINVAL));  /* flags must be 0, 1, 2 */
    assert(bpf_update_elem(fd, &keys[0], &value, BPF_EXIST) == 0);
    value = 0;
    assert(bpf_lookup_elem(fd, &keys[0], &value) == 0 && value == 1);
    assert(bpf_lookup_elem(fd, &keys[2], &value) == 0 && value == 210);
    assert(bpf_delete_elem(fd, &keys[1]) == 0);
    EXPECT_ERR(bpf_delete_elem(fd, &keys[1]), LEGACY(ENOENT));
    EXPECT_ERR(bpf_lookup_elem(fd, &keys[1], &value), LEGACY(ENOENT));
    uint32_t seen = 0, count = 0, cur = 0, next = 0;
    for (int rc = bpf_get_next_key(fd, NULL, &next); rc == 0;
         rc = bpf_get_next_key(fd, &cur, &next)) {
        seen += next;
        count++;
        cur = next;
    }
    assert(errno == LEGACY(ENOENT) && count == 2 && seen == 40);
    key = 999;  /* a missing key: the first key */
    assert(bpf_get_next_key(fd, &key, &next) == 0 && (next == 10 || next == 30));
    printf("hash ok: %u keys summing to %u\n", count, seen);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    EXPECT_ERR(bpf_create_map(6, 4, 8, 1), LEGACY(EINVAL));   /* PERCPU_ARRAY: not a legacy type */
    EXPECT_ERR(bpf_create_map(BPF_MAP_TYPE_ARRAY, 8, 8, 1), LEGACY(EINVAL));  /* ARRAY keys: 4 bytes */
    test_array();
    test_hash();
    printf("maps_test passed\n");
    return 0;
}
