// Shared by the C kernels (not part of the module's interface): sizes, the per-thread scratch
// buffers, and the vector helpers both the GEMM and the attention use.
#ifndef FT_INTERNAL_H
#define FT_INTERNAL_H

#include "ft_kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <stddef.h>

static inline long min_l(long a, long b) { return a < b ? a : b; }
static inline long round_up(long x, long to) { return (x + to - 1) / to * to; }

// Per-thread scratch: the GEMM's packed A and B panels, the attention's transposed keys and
// score gradients. Grown on demand, kept for the thread's life, freed when it exits.
typedef struct { float *a, *b, *t; size_t a_cap, b_cap, t_cap; } ft_buffers;
ft_buffers *ft_thread_buffers(void);                                  // NULL if out of memory
float *ft_reserve(float **p, size_t *cap, size_t need);               // NULL if out of memory

// What a GEMM adds to or derives from each finished tile: a bias per column of C (added with
// the first k block), and GELU of the result written to a second matrix (after the last k block).
typedef struct { const float *bias; float *gelu; long ldg; } epilogue;

// A mask of the first n of 16 lanes (n clamped to 0...16).
__attribute__((target("avx512f")))
static inline __mmask16 lanes(long n) { return n <= 0 ? 0 : n >= 16 ? 0xFFFF : (__mmask16)((1u << n) - 1); }

// exp(x) as flowtune's Swift kernels compute it (Tensor/FastMath.swift, fastExp): x clamped to
// [-87, 88], x = n ln2 + r, a degree-7 Taylor polynomial for e^r, 2^n from exponent bits.
__attribute__((target("avx512f")))
static inline __m512 exp16(__m512 x) {
    x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.0f)), _mm512_set1_ps(-87.0f));
    const __m512 magic = _mm512_set1_ps(12582912.0f);
    __m512 shifted = _mm512_add_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)), magic);
    __m512 n = _mm512_sub_ps(shifted, magic);
    __m512 r = _mm512_sub_ps(x, _mm512_mul_ps(n, _mm512_set1_ps(0.693145751953125f)));
    r = _mm512_sub_ps(r, _mm512_mul_ps(n, _mm512_set1_ps(1.428606765330187045e-06f)));
    __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.0f / 720.0f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(0.5f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.0f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.0f));
    __m512i ni = _mm512_sub_epi32(_mm512_castps_si512(shifted), _mm512_castps_si512(magic));
    __m512i bits = _mm512_slli_epi32(_mm512_add_epi32(ni, _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(p, _mm512_castsi512_ps(bits));
}

// Transposes the 16 x 16 matrix held in r[0..<16] (row i in r[i]) in place: 4 x 4 blocks inside
// each 128-bit lane by unpacking pairs of rows, then the lanes themselves by two rounds of
// 128-bit shuffles.
__attribute__((always_inline, target("avx512f")))
static inline void transpose16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {   // r[4i + j], lane l: column 4l + j of rows 4i..<4i+4
        __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 2]);
        __m512d c = _mm512_castps_pd(t[4 * i + 1]), d = _mm512_castps_pd(t[4 * i + 3]);
        r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
        r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
        r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, d));
        r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, d));
    }
    for (int j = 0; j < 4; j++) {
        t[j] = _mm512_shuffle_f32x4(r[j], r[4 + j], 0x88);
        t[j + 4] = _mm512_shuffle_f32x4(r[j], r[4 + j], 0xdd);
        t[j + 8] = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0x88);
        t[j + 12] = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0xdd);
    }
    for (int j = 0; j < 4; j++) {
        r[j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0x88);
        r[8 + j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0xdd);
        r[4 + j] = _mm512_shuffle_f32x4(t[4 + j], t[12 + j], 0x88);
        r[12 + j] = _mm512_shuffle_f32x4(t[4 + j], t[12 + j], 0xdd);
    }
}

// GELU, tanh form, as Tensor/Kernels.swift's geluForward: x / (1 + exp(-2u)),
// u = sqrt(2/pi) (x + 0.044715 x^3).
__attribute__((target("avx512f")))
static inline __m512 gelu16(__m512 x) {
    __m512 x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
    __m512 u = _mm512_mul_ps(_mm512_set1_ps(0.79788456f), _mm512_add_ps(x, _mm512_mul_ps(_mm512_set1_ps(0.044715f), x3)));
    __m512 e = exp16(_mm512_mul_ps(_mm512_set1_ps(-2.0f), u));
    return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

// One row of a finished 32-column tile of C (the AVX-512 kernels' epilogue): alpha * (acc0, acc1)
// + beta * C (C not read when beta == 0) [+ bias], stored to the first nr columns (masks m0, m1);
// with g, GELU of the result stored there too.
__attribute__((always_inline, target("avx512f")))
static inline void store_row32(float *cr, float *g, __m512 acc0, __m512 acc1, float alpha, float beta,
                               __m512 bias0, __m512 bias1, int has_bias, __mmask16 m0, __mmask16 m1) {
    __m512 va = _mm512_set1_ps(alpha);
    __m512 v0 = _mm512_mul_ps(va, acc0), v1 = _mm512_mul_ps(va, acc1);
    if (beta != 0) {
        __m512 vb = _mm512_set1_ps(beta);
        v0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, cr), v0);
        v1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, cr + 16), v1);
    }
    if (has_bias) { v0 = _mm512_add_ps(v0, bias0); v1 = _mm512_add_ps(v1, bias1); }
    _mm512_mask_storeu_ps(cr, m0, v0);
    _mm512_mask_storeu_ps(cr + 16, m1, v1);
    if (g) {
        _mm512_mask_storeu_ps(g, m0, gelu16(v0));
        _mm512_mask_storeu_ps(g + 16, m1, gelu16(v1));
    }
}

// The epilogue of the AVX-512 kernels' tile of `rows` x 32 accumulators (acc0: columns 0..<16,
// acc1: 16..<32): its first mr rows and nr columns stored by store_row32, the bias (or NULL) read
// once for all of them.
__attribute__((always_inline, target("avx512f")))
static inline void store_tile32(const __m512 *acc0, const __m512 *acc1, const int rows, long mr, long nr, float *c, long ldc,
                                float alpha, float beta, const float *bias, float *g, long ldg) {
    __mmask16 m0 = lanes(nr), m1 = lanes(nr - 16);
    __m512 bias0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();
    __m512 bias1 = bias ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();
#pragma clang loop unroll(full)
    for (int r = 0; r < rows; r++)
        if (r < mr) store_row32(c + r * ldc, g ? g + r * ldg : NULL, acc0[r], acc1[r], alpha, beta, bias0, bias1, bias != NULL, m0, m1);
}

// --- AVX2 + FMA (8 lanes): the same helpers for the AVX2 kernels ---

// A lane mask of the first n of 8 lanes (n clamped to 0...8), for maskload/maskstore.
__attribute__((target("avx2,fma")))
static inline __m256i lanes8(long n) {
    static const int tbl[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    long k = n <= 0 ? 0 : n >= 8 ? 8 : n;
    return _mm256_loadu_si256((const __m256i *)(tbl + 8 - k));
}

// exp16's algorithm on 8 lanes (the same constants, so both paths round alike).
__attribute__((target("avx2,fma")))
static inline __m256 exp8(__m256 x) {
    x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(88.0f)), _mm256_set1_ps(-87.0f));
    const __m256 magic = _mm256_set1_ps(12582912.0f);
    __m256 shifted = _mm256_add_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)), magic);
    __m256 n = _mm256_sub_ps(shifted, magic);
    __m256 r = _mm256_sub_ps(x, _mm256_mul_ps(n, _mm256_set1_ps(0.693145751953125f)));
    r = _mm256_sub_ps(r, _mm256_mul_ps(n, _mm256_set1_ps(1.428606765330187045e-06f)));
    __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f / 720.0f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(0.5f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f));
    __m256i ni = _mm256_sub_epi32(_mm256_castps_si256(shifted), _mm256_castps_si256(magic));
    __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(ni, _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
}

__attribute__((target("avx2,fma")))
static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma")))
static inline float hmax8(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

// Transposes the 8 x 8 matrix in r[0..<8] in place.
__attribute__((always_inline, target("avx2,fma")))
static inline void transpose8(__m256 r[8]) {
    __m256 t[8], u[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 2; i++) {
        u[4 * i] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
        u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
    for (int j = 0; j < 4; j++) {
        r[j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x20);
        r[4 + j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x31);
    }
}

// x (n rows of w values, row stride ld) transposed into xt (w x tp), columns past n zero: 8 x 8
// blocks through registers, the edges one value at a time (exact: only values move).
__attribute__((target("avx2,fma")))
static inline void transpose_rows(long n, long w, const float *x, long ld, float *xt, long tp) {
    for (long d = 0; d < w; d++)
        for (long j = n; j < tp; j++) xt[d * tp + j] = 0;
    long n8 = n & ~7L, w8 = w & ~7L;
    for (long j = 0; j < n8; j += 8) {
        for (long d = 0; d < w8; d += 8) {
            __m256 r[8];
            for (int c = 0; c < 8; c++) r[c] = _mm256_loadu_ps(x + (j + c) * ld + d);
            transpose8(r);
            for (int c = 0; c < 8; c++) _mm256_storeu_ps(xt + (d + c) * tp + j, r[c]);
        }
        for (long d = w8; d < w; d++)
            for (long c = 0; c < 8; c++) xt[d * tp + j + c] = x[(j + c) * ld + d];
    }
    for (long j = n8; j < n; j++)
        for (long d = 0; d < w; d++) xt[d * tp + j] = x[j * ld + d];
}

// Loads / stores n (0...8) floats: a plain access for all 8 (vmaskmovps stores are slow on
// AMD Zen), a masked one for a tail.
__attribute__((target("avx2,fma")))
static inline __m256 load8(const float *p, long n) {
    return n >= 8 ? _mm256_loadu_ps(p) : n <= 0 ? _mm256_setzero_ps() : _mm256_maskload_ps(p, lanes8(n));
}
__attribute__((target("avx2,fma")))
static inline void store8(float *p, long n, __m256 v) {
    if (n >= 8) _mm256_storeu_ps(p, v); else if (n > 0) _mm256_maskstore_ps(p, lanes8(n), v);
}

#endif
#endif
