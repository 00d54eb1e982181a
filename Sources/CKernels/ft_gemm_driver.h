// The parts of the GEMM every kernel shares, included by ft_gemm.c (AVX-512), ft_gemm_avx2.c
// (AVX2) and ft_gemm_bf16.c (AVX512-BF16) after they define FT_TARGET (the target attribute),
// FT_GEMM_NAME (the entry point), the blocking sizes MR, NR, KC, MC, NC, and their own pack_a,
// pack_b, kernel_body (one MR x NR tile with its epilogue) and scale_c (k == 0 or alpha == 0).
// A packed panel holds elements of type FT_PANEL, one per k step of the micro-kernel:
// FT_K_STEPS(kc) of them for a kc-deep block (kc floats, or (kc + 1) / 2 words of bf16 pairs),
// a packed row of A at stride FT_A_STRIDE; FT_IN_PLACE 0 packs every A (the bf16 kernel converts).
// What follows: the micro-kernel entry points for each way of reading A, and the Goto/BLIS
// loop nest around them (described in ft_gemm.c).
#ifndef FT_PANEL
#define FT_PANEL float
#define FT_K_STEPS(kc) (kc)
#define FT_A_STRIDE KC
#define FT_IN_PLACE 1
#endif

__attribute__((noinline, target(FT_TARGET)))
static void kernel_kmajor(long kc, const FT_PANEL *ap, const FT_PANEL *bp, float *c, long ldc, float alpha, float beta,
                          long mr, long nr, const float *bias, float *g, long ldg) {
    kernel_body(kc, ap, 1, MR, bp, c, ldc, alpha, beta, mr, nr, bias, g, ldg);
}

__attribute__((noinline, target(FT_TARGET)))
static void kernel_rows(long kc, const FT_PANEL *ap, const FT_PANEL *bp, float *c, long ldc, float alpha, float beta,
                        long mr, long nr, const float *bias, float *g, long ldg) {
    kernel_body(kc, ap, FT_A_STRIDE, 1, bp, c, ldc, alpha, beta, mr, nr, bias, g, ldg);
}

#if FT_IN_PLACE

// A non-transposed A read in place, for the row strides this model's matrices have (its widths
// 128 and 512, 384 for the qkv gradient; 256 is kernel_rows' own): the stride is a compile-time constant in each, so
// the rows are addressed from one register as in kernel_rows, and full panels need no packing.
#define KERNEL_STRIDE(S)                                                                                 \
    __attribute__((noinline, target(FT_TARGET)))                                                         \
    static void kernel_stride_##S(long kc, const float *ap, const float *bp, float *c, long ldc, float alpha, \
                                  float beta, long mr, long nr, const float *bias, float *g, long ldg) {   \
        kernel_body(kc, ap, S, 1, bp, c, ldc, alpha, beta, mr, nr, bias, g, ldg);                      \
    }
KERNEL_STRIDE(128)
KERNEL_STRIDE(384)
KERNEL_STRIDE(512)

#endif

typedef void (*kernel_fn)(long, const float *, const float *, float *, long, float, float, long, long,
                          const float *, float *, long);

// The in-place kernel for a non-transposed A with row stride lda, or NULL (then A is packed).
static kernel_fn in_place_kernel(int trans_a, long lda) {
#if !FT_IN_PLACE
    (void)lda;
    return NULL;
#else
    if (trans_a) return NULL;
    switch (lda) {
    case 128: return kernel_stride_128;
    case KC: return kernel_rows;          // 256
    case 384: return kernel_stride_384;
    case 512: return kernel_stride_512;
    default: return NULL;
    }
#endif
}

__attribute__((target(FT_TARGET)))
int FT_GEMM_NAME(int trans_a, int trans_b, long m, long n, long k, float alpha,
                   const float *a, long lda, const float *b, long ldb, float beta, float *c, long ldc,
                   const float *bias, float *gelu_out, long ldg) {
    epilogue e = {bias, gelu_out, ldg};
    if (m <= 0 || n <= 0) return 0;
    if (k <= 0 || alpha == 0) { scale_c(m, n, beta, c, ldc, e); return 0; }
    ft_buffers *bufs = ft_thread_buffers();
    if (!bufs) return -1;
    long steps_max = FT_K_STEPS(min_l(k, KC));
    FT_PANEL *bpack = (FT_PANEL *)ft_reserve(&bufs->b, &bufs->b_cap, (size_t)(steps_max * round_up(min_l(n, NC), NR)));
    FT_PANEL *apack = (FT_PANEL *)ft_reserve(&bufs->a, &bufs->a_cap, (size_t)(FT_A_STRIDE * round_up(min_l(m, MC), MR)));
    if (!bpack || !apack) return -1;
    kernel_fn in_place = in_place_kernel(trans_a, lda);
    for (long jc = 0; jc < n; jc += NC) {
        long nc = min_l(NC, n - jc);
        for (long pc = 0; pc < k; pc += KC) {
            long kc = min_l(KC, k - pc), steps = FT_K_STEPS(kc);
            pack_b(trans_b, b, ldb, pc, jc, kc, nc, bpack);
            float beta_block = pc == 0 ? beta : 1.0f;
            int first = pc == 0, last = pc + kc >= k;
            for (long ic = 0; ic < m; ic += MC) {
                long mc = min_l(MC, m - ic);
                // full panels of an in-place A are read where they are; the rest is packed
                long packed_from = in_place ? mc / MR * MR : 0;
                if (packed_from < mc) pack_a(trans_a, a, lda, ic + packed_from, pc, mc - packed_from, kc, apack);
                for (long jr = 0; jr < nc; jr += NR) {
                    const float *bias_t = first && bias ? bias + jc + jr : NULL;
                    for (long ir = 0; ir < mc; ir += MR) {
                        long mr = min_l(MR, mc - ir), nr = min_l(NR, nc - jr);
                        float *ct = c + (ic + ir) * ldc + jc + jr;
                        float *gt = last && gelu_out ? gelu_out + (ic + ir) * ldg + jc + jr : NULL;
                        if (ir < packed_from) {
                            in_place(kc, a + (ic + ir) * lda + pc, (const float *)(bpack + jr * steps), ct, ldc, alpha, beta_block,
                                     mr, nr, bias_t, gt, ldg);
                        } else {
                            (trans_a ? kernel_kmajor : kernel_rows)(steps, apack + (ir - packed_from) * FT_A_STRIDE, bpack + jr * steps,
                                                                    ct, ldc, alpha, beta_block, mr, nr, bias_t, gt, ldg);
                        }
                    }
                }
            }
        }
    }
    return 0;
}
