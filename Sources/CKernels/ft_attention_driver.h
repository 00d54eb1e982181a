// The parts of one head's attention every instruction set shares, included by ft_attention.c
// (AVX-512) and ft_attention_avx2.c (AVX2) after they define FT_TARGET (the target attribute),
// FT_ATTENTION_FORWARD / FT_ATTENTION_BACKWARD (the entry points), FT_KEY_PAD (the keys'
// padding: the column tile width of `dots`), and their own dots, weighted_rows, softmax_row and
// softmax_backward_row (described in ft_attention.c). Here: the order of the products.

__attribute__((target(FT_TARGET)))
int FT_ATTENTION_FORWARD(long T, long hd, float scale, const float *q, const float *k, const float *v, long ld,
                         const float *mask, float *probs, float *out, long ldo) {
    if (T <= 0 || hd <= 0) return 0;
    ft_buffers *bufs = ft_thread_buffers();
    if (!bufs) return -1;
    long tp = round_up(T, FT_KEY_PAD);
    float *kt = ft_reserve(&bufs->t, &bufs->t_cap, (size_t)(hd * tp));
    if (!kt) return -1;
    transpose_rows(T, hd, k, ld, kt, tp);
    dots(T, T, hd, scale, q, ld, kt, tp, probs, T);                   // S = scale Q K^T
    for (long i = 0; i < T; i++) softmax_row(probs + i * T, T, mask);
    weighted_rows(T, T, hd, 1, probs, T, 1, v, ld, out, ldo);         // O = P V
    return 0;
}

__attribute__((target(FT_TARGET)))
int FT_ATTENTION_BACKWARD(long T, long hd, float scale, const float *q, const float *k, const float *v, long ld,
                          const float *probs, const float *dout, long ldo, float *dq, float *dk, float *dv, long ldd) {
    if (T <= 0 || hd <= 0) return 0;
    ft_buffers *bufs = ft_thread_buffers();
    if (!bufs) return -1;
    long tp = round_up(T, FT_KEY_PAD);
    float *scratch = ft_reserve(&bufs->t, &bufs->t_cap, (size_t)(hd * tp + T * T));
    if (!scratch) return -1;
    float *vt = scratch, *ds = scratch + hd * tp;
    weighted_rows(T, T, hd, 1, probs, 1, T, dout, ldo, dv, ldd);      // dV = P^T dO
    transpose_rows(T, hd, v, ld, vt, tp);
    dots(T, T, hd, 1, dout, ldo, vt, tp, ds, T);                     // dP = dO V^T
    for (long i = 0; i < T; i++) softmax_backward_row(probs + i * T, ds + i * T, T);
    weighted_rows(T, T, hd, scale, ds, T, 1, k, ld, dq, ldd);         // dQ = scale dS K
    weighted_rows(T, T, hd, scale, ds, 1, T, q, ld, dk, ldd);         // dK = scale dS^T Q
    return 0;
}
