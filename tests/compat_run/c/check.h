/* Checks for the legacy test programs: assert() for facts, EXPECT_ERR for failing calls. */
#ifndef COMPAT_RUN_CHECK_H
#define COMPAT_RUN_CHECK_H
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* zCore turned every failure into -ENOEXEC */
#ifdef ZCORE
#define LEGACY(err) ENOEXEC
#else
#define LEGACY(err) (err)
#endif

#define EXPECT_ERR(call, err)                                                             \
    do {                                                                                  \
        errno = 0;                                                                        \
        int rc_ = (call);                                                                 \
        int errno_ = errno;                                                               \
        if (rc_ != -1 || errno_ != (err)) {                                               \
            fprintf(stderr, "%s:%d: %s returned %d errno %d, expected -1 errno %d\n",     \
                    __FILE__, __LINE__, #call, rc_, errno_, (err));                       \
            abort();                                                                      \
        }                                                                                 \
    } while (0)

/* The whole file at `path` (its size in *size, which may be 0); aborts if it cannot be read. */
static inline void *read_file(const char *path, uint32_t *size)
{
    FILE *f = fopen(path, "rb");
    assert(f != NULL);
    assert(fseek(f, 0, SEEK_END) == 0);
    long n = ftell(f);
    assert(n >= 0);
    rewind(f);
    void *buf = malloc((size_t)n + 1);
    assert(buf != NULL && fread(buf, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    *size = (uint32_t)n;
    return buf;
}

#endif
