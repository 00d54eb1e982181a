// Box-Muller over a block of generator words, 8 or 4 at a time: the arithmetic of RNG.normal()
// (Tensor/RNG.swift) in double precision, with glibc's vector log and cos (libmvec) in place of
// its scalar ones. Both are within an ulp or two of the true value in double; the result is
// rounded to float, where the two agree unless the double falls within a few ulps of a rounding
// boundary between floats: none differed in 4 M draws compared, nor in the tests' 300,000.
#include "ft_internal.h"

#include <math.h>
#include <stdint.h>

// A uniform in [0, 1) from a word's top 53 bits, as RNG.normal() makes it.
static inline double uniform53(uint64_t w) { return (double)(w >> 11) * 0x1.0p-53; }

// One normal, exactly as RNG.normal(): words w1, w2 in that order.
static inline float normal1(uint64_t w1, uint64_t w2) {
    double u1 = uniform53(w1), u2 = uniform53(w2);
    double r = sqrt(-2.0 * log(1.0 - u1));
    return (float)(r * cos(2.0 * M_PI * u2));
}

#if defined(__x86_64__) && defined(__linux__)

// libmvec's entry points (the x86-64 vector function ABI: "e" AVX-512, "d" AVX2; N8 / N4 lanes)
__attribute__((target("avx512f"))) __m512d _ZGVeN8v_log(__m512d);
__attribute__((target("avx512f"))) __m512d _ZGVeN8v_cos(__m512d);
__attribute__((target("avx2,fma"))) __m256d _ZGVdN4v_log(__m256d);
__attribute__((target("avx2,fma"))) __m256d _ZGVdN4v_cos(__m256d);

// uniform53 in every lane, exactly: the 53-bit integer as 2^32 hi + lo, each half converted
// through the 2^52 trick (AVX2 and AVX-512F have no unsigned 64-bit conversion).
__attribute__((target("avx512f")))
static inline __m512d uniform53x8(__m512i w) {
    __m512i v = _mm512_srli_epi64(w, 11);
    const __m512d two52 = _mm512_set1_pd(0x1.0p52);
    __m512d lo = _mm512_sub_pd(_mm512_castsi512_pd(_mm512_or_si512(_mm512_and_si512(v, _mm512_set1_epi64(0xFFFFFFFF)),
                                                                    _mm512_castpd_si512(two52))), two52);
    __m512d hi = _mm512_sub_pd(_mm512_castsi512_pd(_mm512_or_si512(_mm512_srli_epi64(v, 32), _mm512_castpd_si512(two52))), two52);
    return _mm512_mul_pd(_mm512_fmadd_pd(hi, _mm512_set1_pd(0x1.0p32), lo), _mm512_set1_pd(0x1.0p-53));
}

// 8 normals from 16 words (pairs w[2i], w[2i + 1]), times scale, into out.
__attribute__((target("avx512f")))
static void normals8(const uint64_t *w, float scale, float *out) {
    // de-interleave the pairs: even words -> u1, odd words -> u2
    __m512i a = _mm512_loadu_si512(w), b = _mm512_loadu_si512(w + 8);
    __m512i even = _mm512_permutex2var_epi64(a, _mm512_set_epi64(14, 12, 10, 8, 6, 4, 2, 0), b);
    __m512i odd = _mm512_permutex2var_epi64(a, _mm512_set_epi64(15, 13, 11, 9, 7, 5, 3, 1), b);
    __m512d u1 = uniform53x8(even), u2 = uniform53x8(odd);
    __m512d r = _mm512_sqrt_pd(_mm512_mul_pd(_mm512_set1_pd(-2.0), _ZGVeN8v_log(_mm512_sub_pd(_mm512_set1_pd(1.0), u1))));
    __m512d c = _ZGVeN8v_cos(_mm512_mul_pd(_mm512_set1_pd(2.0 * M_PI), u2));
    __m256 z = _mm512_cvtpd_ps(_mm512_mul_pd(r, c));
    _mm256_storeu_ps(out, _mm256_mul_ps(z, _mm256_set1_ps(scale)));
}

__attribute__((target("avx2,fma")))
static inline __m256d uniform53x4(__m256i w) {
    __m256i v = _mm256_srli_epi64(w, 11);
    const __m256d two52 = _mm256_set1_pd(0x1.0p52);
    __m256d lo = _mm256_sub_pd(_mm256_castsi256_pd(_mm256_or_si256(_mm256_and_si256(v, _mm256_set1_epi64x(0xFFFFFFFF)),
                                                                    _mm256_castpd_si256(two52))), two52);
    __m256d hi = _mm256_sub_pd(_mm256_castsi256_pd(_mm256_or_si256(_mm256_srli_epi64(v, 32), _mm256_castpd_si256(two52))), two52);
    return _mm256_mul_pd(_mm256_fmadd_pd(hi, _mm256_set1_pd(0x1.0p32), lo), _mm256_set1_pd(0x1.0p-53));
}

// 4 normals from 8 words.
__attribute__((target("avx2,fma")))
static void normals4(const uint64_t *w, float scale, float *out) {
    __m256i a = _mm256_loadu_si256((const __m256i *)w), b = _mm256_loadu_si256((const __m256i *)(w + 4));
    // a = (w0 w1 w2 w3), b = (w4 w5 w6 w7): unpack within 128-bit lanes, then order the lanes
    __m256i even = _mm256_permute4x64_epi64(_mm256_unpacklo_epi64(a, b), 0xD8);   // w0 w2 w4 w6
    __m256i odd = _mm256_permute4x64_epi64(_mm256_unpackhi_epi64(a, b), 0xD8);    // w1 w3 w5 w7
    __m256d u1 = uniform53x4(even), u2 = uniform53x4(odd);
    __m256d r = _mm256_sqrt_pd(_mm256_mul_pd(_mm256_set1_pd(-2.0), _ZGVdN4v_log(_mm256_sub_pd(_mm256_set1_pd(1.0), u1))));
    __m256d c = _ZGVdN4v_cos(_mm256_mul_pd(_mm256_set1_pd(2.0 * M_PI), u2));
    __m128 z = _mm256_cvtpd_ps(_mm256_mul_pd(r, c));
    _mm_storeu_ps(out, _mm_mul_ps(z, _mm_set1_ps(scale)));
}

void ft_normals(const uint64_t *words, long n, float scale, float *out, int width) {
    long i = 0;
    if (width == 8)
        for (; i + 8 <= n; i += 8) normals8(words + 2 * i, scale, out + i);
    else if (width == 4)
        for (; i + 4 <= n; i += 4) normals4(words + 2 * i, scale, out + i);
    for (; i < n; i++) out[i] = normal1(words[2 * i], words[2 * i + 1]) * scale;
}

#else

void ft_normals(const uint64_t *words, long n, float scale, float *out, int width) {
    (void)width;
    for (long i = 0; i < n; i++) out[i] = normal1(words[2 * i], words[2 * i + 1]) * scale;
}

#endif
