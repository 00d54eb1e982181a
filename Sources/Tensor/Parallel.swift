import CKernels

/// Runs `body(i)` for i in 0..<n, spread over the cores in contiguous chunks.
/// For element-wise and per-row kernels. The number of chunks is `Compute.current.workers`
/// (read on the calling thread; the bodies run on worker threads, which see no binding).
@inline(__always)
public func parallelFor(_ n: Int, minChunk: Int = 1, _ body: (Range<Int>) -> Void) {
    let workers = Compute.current.workers
    if n <= minChunk || workers == 1 { body(0..<n); return }
    let chunks = min(workers, (n + minChunk - 1) / minChunk)
    let per = (n + chunks - 1) / chunks
    runOnWorkers(chunks, threads: chunks) { c in
        let lo = c * per, hi = min(n, lo + per)
        if lo < hi { body(lo..<hi) }
    }
}

/// Runs `body(i)` for each i in 0..<n, one item per worker thread at a time (n small: one per
/// worker), over at most `Compute.current.workers` threads.
@inline(__always)
public func parallelForEach(_ n: Int, _ body: (Int) -> Void) {
    if n == 1 { body(0); return }
    runOnWorkers(n, threads: min(n, Compute.current.workers), body)
}

/// `body(i)` for i in 0..<n on flowtune's worker threads (CKernels' ft_parallel: threads that
/// spin briefly between loops, so that a chain of short loops does not wait for each to wake).
@inline(__always)
func runOnWorkers(_ n: Int, threads: Int, _ body: (Int) -> Void) {
    withoutActuallyEscaping(body) { body in
        var call = body
        withUnsafeMutablePointer(to: &call) { p in
            _ = ft_parallel(n, threads, { ctx, i in ctx!.assumingMemoryBound(to: ((Int) -> Void).self).pointee(i) }, p)
        }
    }
}
