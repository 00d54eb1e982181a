// Single-precision GEMM with an AVX2 + FMA micro-kernel, for x86-64 CPUs without AVX-512
// (Zen 1-3, Intel client cores): the blocking of ft_gemm.c (see there) with the 6 x 16 tile of
// 16-register machines: 12 ymm accumulators, two ymm loads of the B panel per k step, one
// broadcast of A. Tails use masked loads and stores; full tiles plain ones.
#include "ft_internal.h"

#if defined(__x86_64__)
#include <cpuid.h>

enum { MR = 6, NR = 16, KC = 256, MC = 144, NC = 2048 };   // MC % MR == 0, NC % NR == 0

int ft_avx2_available(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    if (!(c & (1u << 27)) || !(c & (1u << 28)) || !(c & (1u << 12))) return 0;   // OSXSAVE, AVX, FMA
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 0x6) != 0x6) return 0;     // the OS saves XMM and YMM state
    if (__get_cpuid_max(0, 0) < 7) return 0;
    __cpuid_count(7, 0, a, b, c, d);
    return (b >> 5) & 1;                 // AVX2
}

// As ft_gemm.c's pack_a: non-transposed rows copied at stride KC, transposed ones k-major.
__attribute__((target("avx2,fma")))
static void pack_a(int trans, const float *a, long lda, long i0, long p0, long mc, long kc, float *dst) {
    for (long ir = 0; ir < mc; ir += MR) {
        long mr = min_l(MR, mc - ir);
        float *d = dst + ir * KC;
        if (trans) {            // op(A)[i][p] = a[p * lda + i]: MR contiguous values per p
            // each p's 8-lane store spills two lanes into the next p's slot, which that p then
            // overwrites; the last p's store is masked to MR lanes (the panel's end)
            const float *s = a + p0 * lda + i0 + ir;
            for (long p = 0; p + 1 < kc; p++) _mm256_storeu_ps(d + p * MR, load8(s + p * lda, mr));
            _mm256_maskstore_ps(d + (kc - 1) * MR, lanes8(MR), load8(s + (kc - 1) * lda, mr));
        } else {                // op(A)[i][p] = a[i * lda + p]
            for (long r = 0; r < MR; r++) {
                const float *s = a + (i0 + ir + r) * lda + p0;
                for (long p = 0; p < kc; p += 8) store8(d + r * KC + p, kc - p, r < mr ? load8(s + p, kc - p) : _mm256_setzero_ps());
            }
        }
    }
}

// op(B) rows p0..<p0+kc, columns j0..<j0+nc into ceil(nc/NR) panels dst[panel][p][c];
// columns past nc are zero.
__attribute__((target("avx2,fma")))
static void pack_b(int trans, const float *b, long ldb, long p0, long j0, long kc, long nc, float *dst) {
    for (long jr = 0; jr < nc; jr += NR) {
        long nr = min_l(NR, nc - jr);
        float *d = dst + jr * kc;
        if (!trans) {           // NR contiguous values per p
            for (long p = 0; p < kc; p++) {
                const float *s = b + (p0 + p) * ldb + j0 + jr;
                _mm256_store_ps(d + p * NR, load8(s, nr));
                _mm256_store_ps(d + p * NR + 8, load8(s + 8, nr - 8));
            }
        } else {                // columns contiguous in p: 8 x 8 blocks transposed in registers
            for (long half = 0; half < NR; half += 8) {
                for (long p = 0; p < kc; p += 8) {
                    __m256 r[8];
                    for (int c = 0; c < 8; c++)
                        r[c] = half + c < nr ? load8(b + (j0 + jr + half + c) * ldb + p0 + p, kc - p) : _mm256_setzero_ps();
                    transpose8(r);
                    long rows = min_l(8, kc - p);
                    for (int q = 0; q < 8; q++)
                        if (q < rows) _mm256_store_ps(d + (p + q) * NR + half, r[q]);
                }
            }
        }
    }
}

// GELU, tanh form: x / (1 + exp(-2u)), u = sqrt(2/pi) (x + 0.044715 x^3).
__attribute__((target("avx2,fma")))
static inline __m256 gelu8(__m256 x) {
    __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
    __m256 u = _mm256_mul_ps(_mm256_set1_ps(0.79788456f), _mm256_add_ps(x, _mm256_mul_ps(_mm256_set1_ps(0.044715f), x3)));
    __m256 e = exp8(_mm256_mul_ps(_mm256_set1_ps(-2.0f), u));
    return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}


// C[0..<mr][0..<nr] = alpha * (A x B panel) + beta * C [+ bias], [g = GELU(C)] (see ft_gemm.c).
__attribute__((always_inline, target("avx2,fma")))
static inline void kernel_body(long kc, const float *restrict ap, const long a_rs, const long a_cs,
                               const float *restrict bp, float *c, long ldc, float alpha, float beta,
                               long mr, long nr, const float *bias, float *g, long ldg) {
    __m256 acc0[MR], acc1[MR];
#pragma clang loop unroll(full)
    for (int r = 0; r < MR; r++) { acc0[r] = _mm256_setzero_ps(); acc1[r] = _mm256_setzero_ps(); }
#pragma clang loop unroll_count(4)
    for (long p = 0; p < kc; p++) {
        __m256 b0 = _mm256_load_ps(bp), b1 = _mm256_load_ps(bp + 8);
#pragma clang loop unroll(full)
        for (int r = 0; r < MR; r++) {
            __m256 av = _mm256_broadcast_ss(ap + r * a_rs);
            acc0[r] = _mm256_fmadd_ps(av, b0, acc0[r]);
            acc1[r] = _mm256_fmadd_ps(av, b1, acc1[r]);
        }
        ap += a_cs;
        bp += NR;
    }
    __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    __m256 bias0 = bias ? load8(bias, nr) : _mm256_setzero_ps();
    __m256 bias1 = bias ? load8(bias + 8, nr - 8) : _mm256_setzero_ps();
#pragma clang loop unroll(full)
    for (int r = 0; r < MR; r++) {
        if (r < mr) {
            float *cr = c + r * ldc;
            __m256 v0 = _mm256_mul_ps(va, acc0[r]), v1 = _mm256_mul_ps(va, acc1[r]);
            if (beta != 0) {
                v0 = _mm256_fmadd_ps(vb, load8(cr, nr), v0);
                v1 = _mm256_fmadd_ps(vb, load8(cr + 8, nr - 8), v1);
            }
            if (bias) { v0 = _mm256_add_ps(v0, bias0); v1 = _mm256_add_ps(v1, bias1); }
            store8(cr, nr, v0);
            store8(cr + 8, nr - 8, v1);
            if (g) {
                store8(g + r * ldg, nr, gelu8(v0));
                store8(g + r * ldg + 8, nr - 8, gelu8(v1));
            }
        }
    }
}

// k == 0 or alpha == 0: C = beta * C [+ bias], [g = GELU(C)].
__attribute__((target("avx2,fma")))
static void scale_c(long m, long n, float beta, float *c, long ldc, epilogue e) {
    for (long i = 0; i < m; i++) {
        for (long j = 0; j < n; j += 8) {
            float *cr = c + i * ldc + j;
            __m256 v = beta == 0 ? _mm256_setzero_ps() : _mm256_mul_ps(_mm256_set1_ps(beta), load8(cr, n - j));
            if (e.bias) v = _mm256_add_ps(v, load8(e.bias + j, n - j));
            store8(cr, n - j, v);
            if (e.gelu) store8(e.gelu + i * e.ldg + j, n - j, gelu8(v));
        }
    }
}

#define FT_TARGET "avx2,fma"
#define FT_GEMM_NAME ft_avx2_sgemm_fused
#include "ft_gemm_driver.h"

#endif
