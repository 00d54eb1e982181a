// Attention of one (batch entry, head) with AVX2 + FMA, forward and backward: ft_attention.c's
// three product forms (see there) in register tiles of MQ rows x 16 columns (12 accumulators of
// the 16 ymm registers), and its softmax.
#include "ft_internal.h"

#if defined(__x86_64__)
#include <math.h>

enum { MQ = 6 };   // output rows per register tile

__attribute__((always_inline, target("avx2,fma")))
static inline void store_tile(const __m256 *acc0, const __m256 *acc1, long rows, long cols, float alpha, float *out, long ldo) {
    __m256 va = _mm256_set1_ps(alpha);
#pragma clang loop unroll(full)
    for (int r = 0; r < MQ; r++) {
        if (r < rows) {
            store8(out + r * ldo, cols, _mm256_mul_ps(acc0[r], va));
            store8(out + r * ldo + 8, cols - 8, _mm256_mul_ps(acc1[r], va));
        }
    }
}

// out (n x w) = alpha * sum_t M(i, t) X[t][:], M(i, t) = m[i * rs + t * cs].
__attribute__((target("avx2,fma")))
static void weighted_rows(long n, long inner, long w, float alpha, const float *m, long rs, long cs,
                          const float *x, long ldx, float *out, long ldo) {
    for (long i0 = 0; i0 < n; i0 += MQ) {
        long rows = min_l(MQ, n - i0);
        const float *mr[MQ];
        for (int r = 0; r < MQ; r++) mr[r] = m + min_l(i0 + r, n - 1) * rs;
        for (long d = 0; d < w; d += 16) {
            long cols = w - d;
            __m256 acc0[MQ], acc1[MQ];
#pragma clang loop unroll(full)
            for (int r = 0; r < MQ; r++) { acc0[r] = _mm256_setzero_ps(); acc1[r] = _mm256_setzero_ps(); }
            for (long t = 0; t < inner; t++) {
                __m256 x0 = load8(x + t * ldx + d, cols), x1 = load8(x + t * ldx + d + 8, cols - 8);
                long off = t * cs;
#pragma clang loop unroll(full)
                for (int r = 0; r < MQ; r++) {
                    __m256 mv = _mm256_broadcast_ss(mr[r] + off);
                    acc0[r] = _mm256_fmadd_ps(mv, x0, acc0[r]);
                    acc1[r] = _mm256_fmadd_ps(mv, x1, acc1[r]);
                }
            }
            store_tile(acc0, acc1, rows, cols, alpha, out + i0 * ldo + d, ldo);
        }
    }
}

// out (n x nb) = alpha * A Bt, A (n x w, row stride lda), Bt (w x tp) zero-padded past nb (tp % 16 == 0).
__attribute__((target("avx2,fma")))
static void dots(long n, long nb, long w, float alpha, const float *a, long lda, const float *bt, long tp,
                 float *out, long ldo) {
    for (long i0 = 0; i0 < n; i0 += MQ) {
        long rows = min_l(MQ, n - i0);
        const float *ar[MQ];
        for (int r = 0; r < MQ; r++) ar[r] = a + min_l(i0 + r, n - 1) * lda;
        for (long j = 0; j < nb; j += 16) {
            __m256 acc0[MQ], acc1[MQ];
#pragma clang loop unroll(full)
            for (int r = 0; r < MQ; r++) { acc0[r] = _mm256_setzero_ps(); acc1[r] = _mm256_setzero_ps(); }
            for (long d = 0; d < w; d++) {
                __m256 b0 = _mm256_loadu_ps(bt + d * tp + j), b1 = _mm256_loadu_ps(bt + d * tp + j + 8);
#pragma clang loop unroll(full)
                for (int r = 0; r < MQ; r++) {
                    __m256 av = _mm256_broadcast_ss(ar[r] + d);
                    acc0[r] = _mm256_fmadd_ps(av, b0, acc0[r]);
                    acc1[r] = _mm256_fmadd_ps(av, b1, acc1[r]);
                }
            }
            store_tile(acc0, acc1, rows, nb - j, alpha, out + i0 * ldo + j, ldo);
        }
    }
}

// In-place softmax of one row of T scores; mask (T, 0/1 floats) or NULL (see ft_attention.c).
__attribute__((target("avx2,fma")))
static void softmax_row(float *y, long T, const float *mask) {
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    __m256 mx = ninf;
    for (long j = 0; j < T; j += 8) {
        __m256 keep = _mm256_castsi256_ps(lanes8(T - j));
        if (mask) keep = _mm256_and_ps(keep, _mm256_cmp_ps(load8(mask + j, T - j), _mm256_setzero_ps(), _CMP_NEQ_OQ));
        mx = _mm256_max_ps(mx, _mm256_blendv_ps(ninf, load8(y + j, T - j), keep));
    }
    float best = hmax8(mx);
    if (best == -INFINITY) {
        for (long j = 0; j < T; j++) y[j] = 0;
        return;
    }
    __m256 b = _mm256_set1_ps(best), acc = _mm256_setzero_ps();
    for (long j = 0; j < T; j += 8) {
        __m256 e = exp8(_mm256_sub_ps(load8(y + j, T - j), b));
        if (mask) e = _mm256_mul_ps(e, load8(mask + j, T - j));
        e = _mm256_and_ps(e, _mm256_castsi256_ps(lanes8(T - j)));
        store8(y + j, T - j, e);
        acc = _mm256_add_ps(acc, e);
    }
    __m256 inv = _mm256_set1_ps(1.0f / hsum8(acc));
    for (long j = 0; j < T; j += 8) store8(y + j, T - j, _mm256_mul_ps(load8(y + j, T - j), inv));
}

// dS = P * (dP - rowsum(P * dP)) for one row, in place in dp.
__attribute__((target("avx2,fma")))
static void softmax_backward_row(const float *p, float *dp, long T) {
    __m256 acc = _mm256_setzero_ps();
    for (long j = 0; j < T; j += 8) acc = _mm256_fmadd_ps(load8(p + j, T - j), load8(dp + j, T - j), acc);
    __m256 sum = _mm256_set1_ps(hsum8(acc));
    for (long j = 0; j < T; j += 8)
        store8(dp + j, T - j, _mm256_mul_ps(load8(p + j, T - j), _mm256_sub_ps(load8(dp + j, T - j), sum)));
}

#define FT_TARGET "avx2,fma"
#define FT_ATTENTION_FORWARD ft_avx2_attention_forward
#define FT_ATTENTION_BACKWARD ft_avx2_attention_backward
#define FT_KEY_PAD 16
#include "ft_attention_driver.h"

#endif
