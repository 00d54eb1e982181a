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

#endif
#endif
