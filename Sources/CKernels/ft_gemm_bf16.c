// GEMM with bf16 inputs and fp32 accumulation, for CPUs with AVX512-BF16 (vdpbf16ps: per fp32
// lane, acc += a0 b0 + a1 b1 over a pair of bf16 values, twice the products per instruction of an
// fp32 FMA). The contract is ft_sgemm_fused's: fp32 in, fp32 out; op(A) and op(B) are rounded
// to bf16 (round to nearest even) while they are packed, every product is exact in fp32, and
// the sums, alpha, beta, the bias and GELU stay fp32. This is mixed precision as autocast does
// it: the caller's matrices (weights, activations, gradients) are never stored in bf16.
//
// The blocking of ft_gemm.c with k taken in pairs: a B panel holds, for each pair of rows
// (p, p + 1) of op(B), NR 32-bit words (op(B)[p][j], op(B)[p + 1][j]); an A panel the matching
// words of MR rows of op(A). The micro-kernel's k step is one pair: two zmm loads of B, MR
// word broadcasts of A, 2 * MR vdpbf16ps into the same 12 x 32 tile of fp32 accumulators. An odd
// k ends with a pair whose second value is zero. Every A is packed (converted), so there are no
// in-place A kernels here. The loop nest is ft_gemm_driver.h's, over pairs.
#include "ft_internal.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <stdint.h>

#define FT_BF16 "avx512f,avx512bw,avx512bf16"

enum { MR = 12, NR = 32, KC = 512, KP = KC / 2, MC = 192, NC = 2048 };   // KP: pairs per k block

int ft_bf16_available(void) {
    if (!ft_gemm_available()) return 0;
    unsigned a, b, c, d;
    __cpuid_count(7, 0, a, b, c, d);
    if (!((b >> 30) & 1)) return 0;      // AVX512BW
    if (a < 1) return 0;                 // no subleaf 1
    __cpuid_count(7, 1, a, b, c, d);
    return (a >> 5) & 1;                 // AVX512_BF16
}

// 32 floats of one row (the first n; the rest zero) as 32 bf16 in order: 16 words, word q holding
// the values 2q (low half) and 2q + 1 (high half).
__attribute__((always_inline, target(FT_BF16)))
static inline __m512i row_pairs(const float *s, long n) {
    __m512 lo = _mm512_maskz_loadu_ps(lanes(n), s), hi = _mm512_maskz_loadu_ps(lanes(n - 16), s + 16);
    return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
}

// The first n of 16 values of two rows x and y as 16 words (x[c], y[c]).
__attribute__((always_inline, target(FT_BF16)))
static inline __m512i zip_pairs(const float *x, const float *y, long n) {
    const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                         23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    __m512 vx = _mm512_maskz_loadu_ps(lanes(n), x);
    __m512 vy = y ? _mm512_maskz_loadu_ps(lanes(n), y) : _mm512_setzero_ps();
    return _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(vy, vx));
}

// op(A) rows i0..<i0+mc, columns p0..<p0+kc into panels of MR rows at dst + panel * MR * KP
// (words). A non-transposed A: row r of a panel at word r * KP, its pairs in order. A transposed
// one: k-major, pair q of row r at word q * MR + r. Rows past mc are zero.
__attribute__((target(FT_BF16)))
static void pack_a(int trans, const float *a, long lda, long i0, long p0, long mc, long kc, uint32_t *dst) {
    for (long ir = 0; ir < mc; ir += MR) {
        long mr = min_l(MR, mc - ir);
        uint32_t *d = dst + ir * KP;
        if (trans) {            // op(A)[i][p] = a[p * lda + i]
            for (long p = 0; p < kc; p += 2) {
                const float *s = a + (p0 + p) * lda + i0 + ir;
                _mm512_mask_storeu_epi32(d + p / 2 * MR, 0x0FFF, zip_pairs(s, p + 1 < kc ? s + lda : NULL, mr));
            }
        } else {                // op(A)[i][p] = a[i * lda + p]
            for (long r = 0; r < MR; r++) {
                const float *s = a + (i0 + ir + r) * lda + p0;
                uint32_t *dr = d + r * KP;
                long p = 0;
                if (r < mr)             // whole 32-value chunks without masks, then the rest
                    for (; p + 32 <= kc; p += 32)
                        _mm512_storeu_si512(dr + p / 2, (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(s + p + 16), _mm512_loadu_ps(s + p)));
                for (; p < kc; p += 32)
                    _mm512_mask_storeu_epi32(dr + p / 2, lanes((kc - p + 1) / 2),
                                             r < mr ? row_pairs(s + p, kc - p) : _mm512_setzero_si512());
            }
        }
    }
}

// op(B) rows p0..<p0+kc, columns j0..<j0+nc into ceil(nc/NR) panels of ceil(kc/2) x NR words,
// panel at dst + jr * ceil(kc/2): word [q][c] = (op(B)[2q][c], op(B)[2q + 1][c]); columns past nc
// are zero.
__attribute__((target(FT_BF16)))
static void pack_b(int trans, const float *b, long ldb, long p0, long j0, long kc, long nc, uint32_t *dst) {
    long kp = (kc + 1) / 2;
    for (long jr = 0; jr < nc; jr += NR) {
        long nr = min_l(NR, nc - jr);
        uint32_t *d = dst + jr * kp;
        if (!trans) {           // op(B)[p][j] = b[p * ldb + j]: rows p and p + 1 zipped
            for (long p = 0; p < kc; p += 2) {
                const float *s = b + (p0 + p) * ldb + j0 + jr;
                const float *t = p + 1 < kc ? s + ldb : NULL;
                _mm512_store_si512(d + p / 2 * NR, zip_pairs(s, t, nr));
                _mm512_store_si512(d + p / 2 * NR + 16, zip_pairs(s + 16, t ? t + 16 : NULL, nr - 16));
            }
        } else {                // op(B)[p][j] = b[j * ldb + p]: a column's pairs are adjacent
            // 16 columns' next 16 pairs converted as rows, then transposed in registers
            for (long half = 0; half < NR; half += 16) {
                for (long p = 0; p < kc; p += 32) {
                    __m512 r[16];
                    for (int c = 0; c < 16; c++)
                        r[c] = half + c < nr ? (__m512)row_pairs(b + (j0 + jr + half + c) * ldb + p0 + p, kc - p)
                                             : _mm512_setzero_ps();
                    transpose16(r);
                    long pairs = min_l(16, (kc - p + 1) / 2);
                    for (int q = 0; q < pairs; q++) _mm512_store_ps((float *)(d + (p / 2 + q) * NR + half), r[q]);
                }
            }
        }
    }
}

// C[0..<mr][0..<nr] = alpha * (A x B panel) + beta * C [+ bias], [g = GELU(C)], over kp pairs.
__attribute__((always_inline, target(FT_BF16)))
static inline void kernel_body(long kp, const uint32_t *restrict ap, const long a_rs, const long a_cs,
                               const uint32_t *restrict bp, float *c, long ldc, float alpha, float beta,
                               long mr, long nr, const float *bias, float *g, long ldg) {
    __m512 acc0[MR], acc1[MR];
#pragma clang loop unroll(full)
    for (int r = 0; r < MR; r++) { acc0[r] = _mm512_setzero_ps(); acc1[r] = _mm512_setzero_ps(); }
#pragma clang loop unroll_count(2)
    for (long q = 0; q < kp; q++) {
        __m512bh b0 = (__m512bh)_mm512_load_si512(bp), b1 = (__m512bh)_mm512_load_si512(bp + 16);
#pragma clang loop unroll(full)
        for (int r = 0; r < MR; r++) {
            __m512bh av = (__m512bh)_mm512_set1_epi32((int)ap[r * a_rs]);
            acc0[r] = _mm512_dpbf16_ps(acc0[r], av, b0);
            acc1[r] = _mm512_dpbf16_ps(acc1[r], av, b1);
        }
        ap += a_cs;
        bp += NR;
    }
    store_tile32(acc0, acc1, MR, mr, nr, c, ldc, alpha, beta, bias, g, ldg);
}

// k == 0 or alpha == 0: no products, so the fp32 kernel's scaling of C is the answer.
__attribute__((target(FT_BF16)))
static void scale_c(long m, long n, float beta, float *c, long ldc, epilogue e) {
    ft_sgemm_fused(0, 0, m, n, 0, 1, NULL, 1, NULL, 1, beta, c, ldc, e.bias, e.gelu, e.ldg);
}

#define FT_TARGET FT_BF16
#define FT_GEMM_NAME ft_bf16_gemm_fused
#define FT_PANEL uint32_t
#define FT_K_STEPS(kc) (((kc) + 1) / 2)
#define FT_A_STRIDE KP
#define FT_IN_PLACE 0
#include "ft_gemm_driver.h"

#endif
