// Box-Muller, 8 or 4 normals at a time: ft_normal's arithmetic in double precision with glibc's
// vector log and cos (libmvec) in place of its scalar ones. Both are within an ulp or two of the
// true value in double; the result is rounded to float, where the two agree unless the double
// falls within a few ulps of a rounding boundary between floats: none differed in 4 M draws
// compared, nor in the tests' 300,000.
#include "ft_internal.h"

#include <math.h>

float ft_normal(double u1, double u2) {
    double r = sqrt(-2.0 * log(1.0 - u1));
    return (float)(r * cos(2.0 * M_PI * u2));
}

#if defined(__x86_64__) && defined(__linux__)

// libmvec's entry points (the x86-64 vector function ABI: "e" AVX-512, "d" AVX2; N8 / N4 lanes)
__attribute__((target("avx512f"))) __m512d _ZGVeN8v_log(__m512d);
__attribute__((target("avx512f"))) __m512d _ZGVeN8v_cos(__m512d);
__attribute__((target("avx2,fma"))) __m256d _ZGVdN4v_log(__m256d);
__attribute__((target("avx2,fma"))) __m256d _ZGVdN4v_cos(__m256d);

__attribute__((target("avx512f")))
static void normals8(const double *u1, const double *u2, float scale, float *out) {
    __m512d r = _mm512_sqrt_pd(_mm512_mul_pd(_mm512_set1_pd(-2.0), _ZGVeN8v_log(_mm512_sub_pd(_mm512_set1_pd(1.0), _mm512_loadu_pd(u1)))));
    __m512d c = _ZGVeN8v_cos(_mm512_mul_pd(_mm512_set1_pd(2.0 * M_PI), _mm512_loadu_pd(u2)));
    _mm256_storeu_ps(out, _mm256_mul_ps(_mm512_cvtpd_ps(_mm512_mul_pd(r, c)), _mm256_set1_ps(scale)));
}

__attribute__((target("avx2,fma")))
static void normals4(const double *u1, const double *u2, float scale, float *out) {
    __m256d r = _mm256_sqrt_pd(_mm256_mul_pd(_mm256_set1_pd(-2.0), _ZGVdN4v_log(_mm256_sub_pd(_mm256_set1_pd(1.0), _mm256_loadu_pd(u1)))));
    __m256d c = _ZGVdN4v_cos(_mm256_mul_pd(_mm256_set1_pd(2.0 * M_PI), _mm256_loadu_pd(u2)));
    _mm_storeu_ps(out, _mm_mul_ps(_mm256_cvtpd_ps(_mm256_mul_pd(r, c)), _mm_set1_ps(scale)));
}

void ft_normals(const double *u1, const double *u2, long n, float scale, float *out, int width) {
    long i = 0;
    if (width == 8)
        for (; i + 8 <= n; i += 8) normals8(u1 + i, u2 + i, scale, out + i);
    else if (width == 4)
        for (; i + 4 <= n; i += 4) normals4(u1 + i, u2 + i, scale, out + i);
    for (; i < n; i++) out[i] = ft_normal(u1[i], u2[i]) * scale;
}

#else

void ft_normals(const double *u1, const double *u2, long n, float scale, float *out, int width) {
    (void)width;
    for (long i = 0; i < n; i++) out[i] = ft_normal(u1[i], u2[i]) * scale;
}

#endif
