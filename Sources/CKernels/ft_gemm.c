// Single-precision GEMM with an AVX-512 micro-kernel, for CPUs where the BLAS in use runs
// narrower kernels (OpenBLAS 0.3.21 with OPENBLAS_CORETYPE=Haswell on an AVX-512 machine).
//
// The classic Goto/BLIS blocking: for each NC-column block of op(B) and KC-deep slice of k,
// op(B) is packed into NR-wide column panels (k-major, zero-padded); for each MC-row block of
// op(A), op(A) is packed into MR-tall row panels; then an MR x NR tile of C is computed per
// micro-kernel call with 2 * MR zmm accumulators: each k step loads one row of the B panel
// (two zmm) and broadcasts MR values of the A panel. The B micro-panel (KC x NR) stays in L1
// while the A panels (MC x KC) stream from L2.
#include "ft_internal.h"

#if defined(__x86_64__)

enum { MR = 12, NR = 32, KC = 256, MC = 192, NC = 2048 };   // MC % MR == 0, NC % NR == 0

// op(A) rows i0..<i0+mc, columns p0..<p0+kc into ceil(mc/MR) panels of MR rows, panel i at
// dst + i * MR * KC; rows past mc are zero. A transposed A (MR contiguous values per p) is
// packed k-major, dst[panel][p][r]; a non-transposed one (rows contiguous in p) row by row at
// the fixed stride KC, dst[panel][r][p], which is a plain copy and lets the kernel address
// every row from one register (KC is a compile-time constant).
__attribute__((target("avx512f")))
static void pack_a(int trans, const float *a, long lda, long i0, long p0, long mc, long kc, float *dst) {
    for (long ir = 0; ir < mc; ir += MR) {
        long mr = min_l(MR, mc - ir);
        float *d = dst + ir * KC;
        if (trans) {            // op(A)[i][p] = a[p * lda + i]
            __mmask16 mask = (__mmask16)((1u << mr) - 1);
            for (long p = 0; p < kc; p++)
                _mm512_mask_storeu_ps(d + p * MR, 0x0FFF, _mm512_maskz_loadu_ps(mask, a + (p0 + p) * lda + i0 + ir));
        } else {                // op(A)[i][p] = a[i * lda + p]
            for (long r = 0; r < MR; r++) {
                const float *s = a + (i0 + ir + r) * lda + p0;
                for (long p = 0; p < kc; p += 16) {
                    __mmask16 m = kc - p >= 16 ? 0xFFFF : (__mmask16)((1u << (kc - p)) - 1);
                    _mm512_mask_storeu_ps(d + r * KC + p, m, r < mr ? _mm512_maskz_loadu_ps(m, s + p) : _mm512_setzero_ps());
                }
            }
        }
    }
}

// op(B) rows p0..<p0+kc, columns j0..<j0+nc into ceil(nc/NR) panels of kc x NR:
// dst[panel][p][c]; columns past nc are zero.
__attribute__((target("avx512f")))
static void pack_b(int trans, const float *b, long ldb, long p0, long j0, long kc, long nc, float *dst) {
    for (long jr = 0; jr < nc; jr += NR) {
        long nr = min_l(NR, nc - jr);
        float *d = dst + jr * kc;
        if (!trans) {           // op(B)[p][j] = b[p * ldb + j]: NR contiguous values per p
            __mmask16 m0 = nr >= 16 ? 0xFFFF : (__mmask16)((1u << nr) - 1);
            __mmask16 m1 = nr >= 32 ? 0xFFFF : nr <= 16 ? 0 : (__mmask16)((1u << (nr - 16)) - 1);
            for (long p = 0; p < kc; p++) {
                const float *s = b + (p0 + p) * ldb + j0 + jr;
                _mm512_store_ps(d + p * NR, _mm512_maskz_loadu_ps(m0, s));
                _mm512_store_ps(d + p * NR + 16, _mm512_maskz_loadu_ps(m1, s + 16));
            }
        } else {                // op(B)[p][j] = b[j * ldb + p]: columns are contiguous in p
            // 16 x 16 blocks: 16 columns' next 16 values loaded as rows, transposed in registers
            for (long half = 0; half < NR; half += 16) {
                for (long p = 0; p < kc; p += 16) {
                    __mmask16 mp = kc - p >= 16 ? 0xFFFF : (__mmask16)((1u << (kc - p)) - 1);
                    __m512 r[16];
                    for (int c = 0; c < 16; c++) {
                        r[c] = half + c < nr ? _mm512_maskz_loadu_ps(mp, b + (j0 + jr + half + c) * ldb + p0 + p)
                                             : _mm512_setzero_ps();
                    }
                    transpose16(r);
                    long rows = min_l(16, kc - p);
                    for (int q = 0; q < 16; q++)
                        if (q < rows) _mm512_store_ps(d + (p + q) * NR + half, r[q]);
                }
            }
        }
    }
}

// C[0..<mr][0..<nr] = alpha * (A x B panel) + beta * C [+ bias] (C not read when beta == 0);
// with `g`, also g = GELU(C). `bias` and `g` point at the tile's column / tile, or are NULL.
__attribute__((always_inline, target("avx512f")))
static inline void kernel_body(long kc, const float *restrict ap, const long a_rs, const long a_cs,
                               const float *restrict bp, float *c, long ldc, float alpha, float beta,
                               long mr, long nr, const float *bias, float *g, long ldg) {
    __m512 acc0[MR], acc1[MR];
#pragma clang loop unroll(full)
    for (int r = 0; r < MR; r++) { acc0[r] = _mm512_setzero_ps(); acc1[r] = _mm512_setzero_ps(); }
#pragma clang loop unroll_count(2)
    for (long p = 0; p < kc; p++) {
        __m512 b0 = _mm512_load_ps(bp), b1 = _mm512_load_ps(bp + 16);
#pragma clang loop unroll(full)
        for (int r = 0; r < MR; r++) {
            __m512 av = _mm512_set1_ps(ap[r * a_rs]);
            acc0[r] = _mm512_fmadd_ps(av, b0, acc0[r]);
            acc1[r] = _mm512_fmadd_ps(av, b1, acc1[r]);
        }
        ap += a_cs;
        bp += NR;
    }
    store_tile32(acc0, acc1, MR, mr, nr, c, ldc, alpha, beta, bias, g, ldg);
}

// The A panel k-major (from a transposed A) or row by row at stride KC (see pack_a).
// k == 0 or alpha == 0: C = beta * C [+ bias], [g = GELU(C)].
__attribute__((target("avx512f")))
static void scale_c(long m, long n, float beta, float *c, long ldc, epilogue e) {
    for (long i = 0; i < m; i++) {
        for (long j = 0; j < n; j += 16) {
            __mmask16 mask = n - j >= 16 ? 0xFFFF : (__mmask16)((1u << (n - j)) - 1);
            float *cr = c + i * ldc + j;
            __m512 v = beta == 0 ? _mm512_setzero_ps() : _mm512_mul_ps(_mm512_set1_ps(beta), _mm512_maskz_loadu_ps(mask, cr));
            if (e.bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, e.bias + j));
            _mm512_mask_storeu_ps(cr, mask, v);
            if (e.gelu) _mm512_mask_storeu_ps(e.gelu + i * e.ldg + j, mask, gelu16(v));
        }
    }
}

#define FT_TARGET "avx512f"
#define FT_GEMM_NAME ft_sgemm_fused
#include "ft_gemm_driver.h"

int ft_sgemm(int trans_a, int trans_b, long m, long n, long k, float alpha,
             const float *a, long lda, const float *b, long ldb, float beta, float *c, long ldc) {
    return ft_sgemm_fused(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, NULL, NULL, 0);
}

#endif
