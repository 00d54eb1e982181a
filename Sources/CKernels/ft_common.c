// What the C kernels share at run time: whether this CPU may run them, and the per-thread
// scratch buffers; on other CPUs, the entry points' stand-ins (all in this one place).
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
#include <stddef.h>

// Elsewhere no own kernel runs: the availability checks say so, and the entry points (which the
// Swift side never calls then) fail without touching their outputs.
int ft_gemm_available(void) { return 0; }
int ft_avx2_available(void) { return 0; }
int ft_bf16_available(void) { return 0; }

int ft_sgemm_fused(int trans_a, int trans_b, long m, long n, long k, float alpha, const float *a, long lda, const float *b,
                   long ldb, float beta, float *c, long ldc, const float *bias, float *gelu_out, long ldg) {
    (void)trans_a; (void)trans_b; (void)m; (void)n; (void)k; (void)alpha; (void)a; (void)lda; (void)b; (void)ldb;
    (void)beta; (void)c; (void)ldc; (void)bias; (void)gelu_out; (void)ldg;
    return -1;
}
int ft_avx2_sgemm_fused(int trans_a, int trans_b, long m, long n, long k, float alpha, const float *a, long lda,
                        const float *b, long ldb, float beta, float *c, long ldc, const float *bias, float *gelu_out, long ldg) {
    return ft_sgemm_fused(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, bias, gelu_out, ldg);
}
int ft_bf16_gemm_fused(int trans_a, int trans_b, long m, long n, long k, float alpha, const float *a, long lda,
                       const float *b, long ldb, float beta, float *c, long ldc, const float *bias, float *gelu_out, long ldg) {
    return ft_sgemm_fused(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, bias, gelu_out, ldg);
}
int ft_sgemm(int trans_a, int trans_b, long m, long n, long k, float alpha, const float *a, long lda, const float *b,
             long ldb, float beta, float *c, long ldc) {
    return ft_sgemm_fused(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, NULL, NULL, 0);
}

int ft_attention_forward(long T, long hd, float scale, const float *q, const float *k, const float *v, long ld,
                         const float *mask, float *probs, float *out, long ldo) {
    (void)T; (void)hd; (void)scale; (void)q; (void)k; (void)v; (void)ld; (void)mask; (void)probs; (void)out; (void)ldo;
    return -1;
}
int ft_avx2_attention_forward(long T, long hd, float scale, const float *q, const float *k, const float *v, long ld,
                              const float *mask, float *probs, float *out, long ldo) {
    return ft_attention_forward(T, hd, scale, q, k, v, ld, mask, probs, out, ldo);
}
int ft_attention_backward(long T, long hd, float scale, const float *q, const float *k, const float *v, long ld,
                          const float *probs, const float *dout, long ldo, float *dq, float *dk, float *dv, long ldd) {
    (void)T; (void)hd; (void)scale; (void)q; (void)k; (void)v; (void)ld; (void)probs; (void)dout; (void)ldo;
    (void)dq; (void)dk; (void)dv; (void)ldd;
    return -1;
}
int ft_avx2_attention_backward(long T, long hd, float scale, const float *q, const float *k, const float *v, long ld,
                               const float *probs, const float *dout, long ldo, float *dq, float *dk, float *dv, long ldd) {
    return ft_attention_backward(T, hd, scale, q, k, v, ld, probs, dout, ldo, dq, dk, dv, ldd);
}

#endif
