/*
 * Allocation counter, LD_PRELOADed into a benchmark program:
 *   LD_PRELOAD=build/bench/liballoc_count.so bench_dgram recv ...
 * Every malloc, calloc, realloc, posix_memalign, aligned_alloc, memalign and
 * valloc call adds one to an atomic counter, then goes to glibc's own
 * allocator (its exported __libc_* entry points, so no dlsym bootstrap
 * problem). free is not interposed. The programs read the counter through
 * bench_alloc_count(), found with dlsym(RTLD_DEFAULT, ...) (see
 * alloc_calls() in bench_common.c): absent when this library is not loaded.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void *__libc_memalign(size_t align, size_t size);

static atomic_ulong calls;

#define COUNT() atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed)

unsigned long bench_alloc_count(void)
{
    return atomic_load_explicit(&calls, memory_order_relaxed);
}

void *malloc(size_t size)
{
    COUNT();
    return __libc_malloc(size);
}

void *calloc(size_t n, size_t size)
{
    COUNT();
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t size)
{
    COUNT();
    return __libc_realloc(p, size);
}

void *memalign(size_t align, size_t size)
{
    COUNT();
    return __libc_memalign(align, size);
}

void *aligned_alloc(size_t align, size_t size)
{
    COUNT();
    return __libc_memalign(align, size);
}

void *valloc(size_t size)
{
    COUNT();
    return __libc_memalign(4096, size);
}

int posix_memalign(void **out, size_t align, size_t size)
{
    COUNT();
    /* POSIX: a power of two that is a multiple of sizeof(void *). */
    if (align % sizeof(void *) != 0 || (align & (align - 1)) != 0) {
        return EINVAL;
    }
    void *p = __libc_memalign(align, size);
    if (!p && size) {
        return ENOMEM;
    }
    *out = p;
    return 0;
}
