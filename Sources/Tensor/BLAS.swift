import CBLAS
import CKernels
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// Row-major single-precision GEMM: C = alpha * op(A) * op(B) + beta * C [+ bias], with the
/// inputs in `Compute.current.precision` (bf16: rounded while packed, fp32 accumulation).
/// op(A) is (M, K), op(B) is (K, N), C is (M, N); leading dimensions are row strides.
/// `bias` (N) is added to every row of C; with `geluOut` (same shape and row stride as C),
/// GELU(C) is written there too: both are fused into the GEMM's last pass over C when the
/// own kernel runs (one pass over memory instead of three).
///
/// OpenBLAS runs single-threaded (its idle threads spin in sched_yield and fight our own
/// workers on a 2-core machine); large products are split here by rows of C (or by columns
/// when C has few rows) over `Compute.current.workers` threads. Pass `parallel: false` from
/// inside a parallel region, and the `kernels` read before it (worker threads see no binding;
/// an explicit `kernels` means its fp32 GEMM).
@inline(__always)
public func sgemm(transA: Bool = false, transB: Bool = false,
                  m: Int, n: Int, k: Int, alpha: Float = 1,
                  a: UnsafePointer<Float>, lda: Int,
                  b: UnsafePointer<Float>, ldb: Int,
                  beta: Float = 0,
                  c: UnsafeMutablePointer<Float>, ldc: Int,
                  bias: UnsafePointer<Float>? = nil, geluOut: UnsafeMutablePointer<Float>? = nil,
                  parallel: Bool = true, kernels: KernelPath? = nil) {
    if m == 0 || n == 0 { return }
    _ = BLASThreads.singleThreaded
    let compute = Compute.current
    let own: KernelPath.GEMM? = if let kernels { kernels.gemm } else { compute.gemm }
    let workers = parallel ? compute.workers : 1
    if workers == 1 || m * n * k < 1 << 20 {
        sgemmSerial(own, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, bias, geluOut)
        return
    }
    if m >= 8 * workers {
        // split rows of C (and of op(A))
        let per = ((m + workers - 1) / workers + 7) / 8 * 8
        let chunks = (m + per - 1) / per
        parallelForEach(chunks) { i in
            let lo = i * per, rows = min(per, m - lo)
            let aOff = transA ? lo : lo * lda
            sgemmSerial(own, transA, transB, rows, n, k, alpha, a + aOff, lda, b, ldb, beta, c + lo * ldc, ldc,
                        bias, geluOut.map { $0 + lo * ldc })
        }
    } else {
        // split columns of C (and of op(B))
        let per = ((n + workers - 1) / workers + 15) / 16 * 16
        let chunks = (n + per - 1) / per
        parallelForEach(chunks) { i in
            let lo = i * per, cols = min(per, n - lo)
            let bOff = transB ? lo * ldb : lo
            sgemmSerial(own, transA, transB, m, cols, k, alpha, a, lda, b + bOff, ldb, beta, c + lo, ldc,
                        bias.map { $0 + lo }, geluOut.map { $0 + lo })
        }
    }
}

@inline(__always)
func sgemmSerial(_ own: KernelPath.GEMM?, _ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
                 _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
                 _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int,
                 _ bias: UnsafePointer<Float>?, _ geluOut: UnsafeMutablePointer<Float>?) {
    if let own, own(transA ? 1 : 0, transB ? 1 : 0, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, bias, geluOut, ldc) == 0 {
        return
    }
    sgemmOpenBLAS(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, bias, geluOut)
}

/// The same product through OpenBLAS, with the bias and GELU as separate passes.
func sgemmOpenBLAS(_ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
                   _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
                   _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int,
                   _ bias: UnsafePointer<Float>?, _ geluOut: UnsafeMutablePointer<Float>?) {
    // a bias with beta == 0 is the initial C of the product (one pass fewer); otherwise added after
    let biasFirst = bias != nil && beta == 0
    if let bias, biasFirst {
        for r in 0..<m { (c + r * ldc).update(from: bias, count: n) }
    }
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), biasFirst ? 1 : beta, c, Int32(ldc))
    if let bias, !biasFirst {
        for r in 0..<m { let row = c + r * ldc; for j in 0..<n { row[j] += bias[j] } }
    }
    if let geluOut {
        for r in 0..<m { geluRow(out: geluOut + r * ldc, inp: c + r * ldc, count: n) }
    }
}

/// sum x_i^2 over `count` floats, accumulated in double precision (OpenBLAS's dsdot).
public func squaredNorm(_ x: UnsafePointer<Float>, count: Int) -> Double {
    _ = BLASThreads.singleThreaded
    return count == 0 ? 0 : cblas_dsdot(Int32(count), x, 1, x, 1)
}
