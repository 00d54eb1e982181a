#ifndef FT_KERNELS_H
#define FT_KERNELS_H

/// 1 when this CPU and OS run AVX-512F code (CPUID leaf 7 and the OS's ZMM state in XCR0),
/// so that ft_sgemm may be called; 0 otherwise (and on every non-x86-64 machine).
int ft_gemm_available(void);

/// Row-major single-precision GEMM, C = alpha * op(A) * op(B) + beta * C, with op(A) (m, k),
/// op(B) (k, n) and C (m, n); lda/ldb/ldc are row strides; trans_a/trans_b nonzero for A^T/B^T.
/// Same contract as cblas_sgemm(CblasRowMajor, ...): with beta == 0, C is not read.
/// Single-threaded; callers split large products. Only call it when ft_gemm_available() is 1.
/// Returns 0, or -1 when its packing buffers could not be allocated (C is then untouched).
int ft_sgemm(int trans_a, int trans_b, long m, long n, long k, float alpha,
              const float *a, long lda, const float *b, long ldb, float beta, float *c, long ldc);

/// ft_sgemm with an epilogue: C = alpha * op(A) * op(B) + beta * C + bias, bias (n) added to
/// every row (NULL: none); with gelu_out, also gelu_out = GELU(C) (tanh form; row stride ldg).
int ft_sgemm_fused(int trans_a, int trans_b, long m, long n, long k, float alpha,
                   const float *a, long lda, const float *b, long ldb, float beta, float *c, long ldc,
                   const float *bias, float *gelu_out, long ldg);

/// Scaled dot-product attention of one head: probs (T, T) = softmax(scale * Q K^T) over the keys
/// with mask (T floats, 0 = masked key, or NULL), out (T, hd; row stride ldo) = probs V.
/// q, k, v: T rows of hd values each, row stride ld. Masked keys get probability exactly 0; a
/// query whose keys are all masked gets all zeros. Returns 0, or -1 (nothing written) when
/// its scratch buffer could not be allocated. Only call it when ft_gemm_available() is 1.
int ft_attention_forward(long T, long hd, float scale, const float *q, const float *k, const float *v, long ld,
                         const float *mask, float *probs, float *out, long ldo);

/// The backward of ft_attention_forward for one head, given its probs and dout (T, hd; row
/// stride ldo): dq, dk, dv (T rows of hd, row stride ldd) written. Returns 0, or -1 (nothing
/// written) when its scratch buffer could not be allocated.
int ft_attention_backward(long T, long hd, float scale, const float *q, const float *k, const float *v, long ld,
                          const float *probs, const float *dout, long ldo, float *dq, float *dk, float *dv, long ldd);

/// 1 when this CPU and OS run AVX2 + FMA code (CPUID leaves 1 and 7, YMM state in XCR0), so
/// that the ft_avx2_ functions may be called; 0 otherwise.
int ft_avx2_available(void);

/// ft_sgemm_fused with AVX2 + FMA kernels (the same contract). Only call it when
/// ft_avx2_available() is 1.
int ft_avx2_sgemm_fused(int trans_a, int trans_b, long m, long n, long k, float alpha,
                        const float *a, long lda, const float *b, long ldb, float beta, float *c, long ldc,
                        const float *bias, float *gelu_out, long ldg);

/// ft_attention_forward / ft_attention_backward with AVX2 + FMA kernels (the same contracts).
int ft_avx2_attention_forward(long T, long hd, float scale, const float *q, const float *k, const float *v, long ld,
                              const float *mask, float *probs, float *out, long ldo);
int ft_avx2_attention_backward(long T, long hd, float scale, const float *q, const float *k, const float *v, long ld,
                               const float *probs, const float *dout, long ldo, float *dq, float *dk, float *dv, long ldd);

/// 1 when this CPU runs AVX-512F, AVX512BW and AVX512_BF16 (CPUID leaf 7 subleaves 0 and 1),
/// so that ft_bf16_gemm_fused may be called; 0 otherwise.
int ft_bf16_available(void);

/// ft_sgemm_fused's contract with op(A) and op(B) rounded to bf16 (nearest even) as they are
/// packed and every product accumulated in fp32 (vdpbf16ps); alpha, beta, bias and GELU in fp32.
/// Only call it when ft_bf16_available() is 1.
int ft_bf16_gemm_fused(int trans_a, int trans_b, long m, long n, long k, float alpha,
                       const float *a, long lda, const float *b, long ldb, float beta, float *c, long ldc,
                       const float *bias, float *gelu_out, long ldg);

/// A standard normal from two uniforms in [0, 1) by Box-Muller in double precision,
/// sqrt(-2 log(1 - u1)) cos(2 pi u2), rounded to float (RNG.normal()).
float ft_normal(double u1, double u2);

/// n of them, times scale, into out: normal i from u1[i] and u2[i]. width 8 takes them 8 at a
/// time with AVX-512F and glibc's vector log and cos, 4 with AVX2 + FMA (only where the CPU runs
/// that code), anything else one at a time as ft_normal.
void ft_normals(const double *u1, const double *u2, long n, float scale, float *out, int width);

/// Runs fn(ctx, i) for every i in 0..<n over the calling thread and flowtune's worker threads
/// (at least threads - 1 of them, started on first use; any idle one may claim an item; they
/// spin briefly between loops, then sleep), and returns when all are done. Loops of one thread, of more than 65535 items,
/// loops started inside a loop's item, and loops started while another thread's loop runs, run
/// serially on the calling thread. Returns 0.
int ft_parallel(long n, long threads, void (*fn)(void *ctx, long i), void *ctx);

#endif
