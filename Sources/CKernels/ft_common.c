// What the C kernels share at run time: whether this CPU may run them, and the per-thread
// scratch buffers.
#include "ft_internal.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <pthread.h>
#include <stdlib.h>

int ft_gemm_available(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return 0;   // OSXSAVE
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 0xE6) != 0xE6) return 0;   // the OS saves XMM, YMM, opmask and both ZMM halves
    if (__get_cpuid_max(0, 0) < 7) return 0;
    __cpuid_count(7, 0, a, b, c, d);
    return (b >> 16) & 1;                // AVX-512F
}

static pthread_key_t buffers_key;
static pthread_once_t buffers_once = PTHREAD_ONCE_INIT;
static void free_buffers(void *p) { ft_buffers *s = p; free(s->a); free(s->b); free(s->t); free(s); }
static void make_key(void) { pthread_key_create(&buffers_key, free_buffers); }

float *ft_reserve(float **p, size_t *cap, size_t need) {
    if (*cap >= need) return *p;
    free(*p);
    *p = NULL;
    *cap = 0;
    void *q;
    if (posix_memalign(&q, 64, need * sizeof(float)) != 0) return NULL;
    *p = q;
    *cap = need;
    return *p;
}

ft_buffers *ft_thread_buffers(void) {
    pthread_once(&buffers_once, make_key);
    ft_buffers *s = pthread_getspecific(buffers_key);
    if (!s) {
        s = calloc(1, sizeof(ft_buffers));
        if (!s || pthread_setspecific(buffers_key, s) != 0) { free(s); return NULL; }
    }
    return s;
}

#else

int ft_gemm_available(void) { return 0; }

#endif
