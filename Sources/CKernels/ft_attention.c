// Attention of one (batch entry, head) with AVX-512, forward and backward.
#include "ft_internal.h"

#if defined(__x86_64__)
#include <math.h>

// Every product inside one head is small (T x T x hd, T ~ 80, hd ~ 32) and has one of three
// forms, each computed in register tiles of MQ output rows x 32 columns without packing:
//   weighted_rows  out[i][:] = alpha * sum_j M[i][j] X[j][:]    (P V, dS K)
//                  out[j][:] = alpha * sum_i M[i][j] X[i][:]    (P^T dO, dS^T Q)
//   dots         out[i][j] = alpha * sum_d A[i][d] Bt[d][j]     (Q K^T, dO V^T; Bt transposed)

enum { MQ = 8 };   // output rows per register tile

// Stores MQ rows (rows of them valid) of a tile of two zmm per row, times alpha.
__attribute__((always_inline, target("avx512f")))
static inline void store_tile(const __m512 *acc0, const __m512 *acc1, long rows, float alpha, float *out, long ldo,
                              __mmask16 m0, __mmask16 m1) {
    __m512 va = _mm512_set1_ps(alpha);
#pragma clang loop unroll(full)
    for (int r = 0; r < MQ; r++) {
        if (r < rows) {
            _mm512_mask_storeu_ps(out + r * ldo, m0, _mm512_mul_ps(acc0[r], va));
            _mm512_mask_storeu_ps(out + r * ldo + 16, m1, _mm512_mul_ps(acc1[r], va));
        }
    }
}

// out (n x w) = alpha * sum_t M(i, t) X[t][:], M(i, t) = m[i * rs + t * cs]:
// (rs, cs) = (ldm, 1) gives M X, (1, ldm) gives M^T X. X is inner x w, row stride ldx.
__attribute__((target("avx512f")))
static void weighted_rows(long n, long inner, long w, float alpha, const float *m, long rs, long cs,
                          const float *x, long ldx, float *out, long ldo) {
    for (long i0 = 0; i0 < n; i0 += MQ) {
        long rows = min_l(MQ, n - i0);
        const float *mr[MQ];
        for (int r = 0; r < MQ; r++) mr[r] = m + min_l(i0 + r, n - 1) * rs;   // tail rows repeat the last
        for (long d = 0; d < w; d += 32) {
            __mmask16 m0 = lanes(w - d), m1 = lanes(w - d - 16);
            __m512 acc0[MQ], acc1[MQ];
#pragma clang loop unroll(full)
            for (int r = 0; r < MQ; r++) { acc0[r] = _mm512_setzero_ps(); acc1[r] = _mm512_setzero_ps(); }
            for (long t = 0; t < inner; t++) {
                __m512 x0 = _mm512_maskz_loadu_ps(m0, x + t * ldx + d), x1 = _mm512_maskz_loadu_ps(m1, x + t * ldx + d + 16);
                long off = t * cs;
#pragma clang loop unroll(full)
                for (int r = 0; r < MQ; r++) {
                    __m512 mv = _mm512_set1_ps(mr[r][off]);
                    acc0[r] = _mm512_fmadd_ps(mv, x0, acc0[r]);
                    acc1[r] = _mm512_fmadd_ps(mv, x1, acc1[r]);
                }
            }
            store_tile(acc0, acc1, rows, alpha, out + i0 * ldo + d, ldo, m0, m1);
        }
    }
}

// out (n x nb) = alpha * A Bt, A (n x w, row stride lda), Bt (w x tp) zero-padded past nb.
__attribute__((target("avx512f")))
static void dots(long n, long nb, long w, float alpha, const float *a, long lda, const float *bt, long tp,
                 float *out, long ldo) {
    for (long i0 = 0; i0 < n; i0 += MQ) {
        long rows = min_l(MQ, n - i0);
        const float *ar[MQ];
        for (int r = 0; r < MQ; r++) ar[r] = a + min_l(i0 + r, n - 1) * lda;
        for (long j = 0; j < nb; j += 32) {
            __m512 acc0[MQ], acc1[MQ];
#pragma clang loop unroll(full)
            for (int r = 0; r < MQ; r++) { acc0[r] = _mm512_setzero_ps(); acc1[r] = _mm512_setzero_ps(); }
            for (long d = 0; d < w; d++) {
                __m512 b0 = _mm512_loadu_ps(bt + d * tp + j), b1 = _mm512_loadu_ps(bt + d * tp + j + 16);
#pragma clang loop unroll(full)
                for (int r = 0; r < MQ; r++) {
                    __m512 av = _mm512_set1_ps(ar[r][d]);
                    acc0[r] = _mm512_fmadd_ps(av, b0, acc0[r]);
                    acc1[r] = _mm512_fmadd_ps(av, b1, acc1[r]);
                }
            }
            store_tile(acc0, acc1, rows, alpha, out + i0 * ldo + j, ldo, lanes(nb - j), lanes(nb - j - 16));
        }
    }
}

// In-place softmax of one row of T scores; mask (T, 0/1 floats) or NULL. Masked keys get
// exactly 0; a row with every key masked becomes all zeros.
__attribute__((target("avx512f")))
static void softmax_row(float *y, long T, const float *mask) {
    __m512 mx = _mm512_set1_ps(-INFINITY);
    for (long j = 0; j < T; j += 16) {
        __mmask16 m = lanes(T - j);
        if (mask) m &= _mm512_cmp_ps_mask(_mm512_maskz_loadu_ps(m, mask + j), _mm512_setzero_ps(), _CMP_NEQ_OQ);
        mx = _mm512_mask_max_ps(mx, m, mx, _mm512_maskz_loadu_ps(m, y + j));
    }
    float best = _mm512_reduce_max_ps(mx);
    if (best == -INFINITY) {
        for (long j = 0; j < T; j++) y[j] = 0;
        return;
    }
    __m512 b = _mm512_set1_ps(best), acc = _mm512_setzero_ps();
    for (long j = 0; j < T; j += 16) {
        __mmask16 m = lanes(T - j);
        __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, y + j), b));
        if (mask) e = _mm512_mul_ps(e, _mm512_maskz_loadu_ps(m, mask + j));
        e = _mm512_maskz_mov_ps(m, e);
        _mm512_mask_storeu_ps(y + j, m, e);
        acc = _mm512_add_ps(acc, e);
    }
    __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(acc));
    for (long j = 0; j < T; j += 16) {
        __mmask16 m = lanes(T - j);
        _mm512_mask_storeu_ps(y + j, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, y + j), inv));
    }
}

// dS = P * (dP - rowsum(P * dP)) for one row, in place in dp.
__attribute__((target("avx512f")))
static void softmax_backward_row(const float *p, float *dp, long T) {
    __m512 acc = _mm512_setzero_ps();
    for (long j = 0; j < T; j += 16) {
        __mmask16 m = lanes(T - j);
        acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, p + j), _mm512_maskz_loadu_ps(m, dp + j), acc);
    }
    __m512 sum = _mm512_set1_ps(_mm512_reduce_add_ps(acc));
    for (long j = 0; j < T; j += 16) {
        __mmask16 m = lanes(T - j);
        __m512 pv = _mm512_maskz_loadu_ps(m, p + j);
        _mm512_mask_storeu_ps(dp + j, m, _mm512_mul_ps(pv, _mm512_sub_ps(_mm512_maskz_loadu_ps(m, dp + j), sum)));
    }
}

#define FT_TARGET "avx512f"
#define FT_ATTENTION_FORWARD ft_attention_forward
#define FT_ATTENTION_BACKWARD ft_attention_backward
#define FT_KEY_PAD 32
#include "ft_attention_driver.h"

#endif
