import Dispatch

/// Runs `body(i)` for i in 0..<n, spread over the cores in contiguous chunks.
/// For element-wise and per-row kernels. The number of chunks is `Compute.current.workers`
/// (read on the calling thread; the bodies run on worker threads, which see no binding).
@inline(__always)
public func parallelFor(_ n: Int, minChunk: Int = 1, _ body: (Range<Int>) -> Void) {
    let workers = Compute.current.workers
    if n <= minChunk || workers == 1 { body(0..<n); return }
    let chunks = min(workers, (n + minChunk - 1) / minChunk)
    let per = (n + chunks - 1) / chunks
    DispatchQueue.concurrentPerform(iterations: chunks) { c in
        let lo = c * per, hi = min(n, lo + per)
        if lo < hi { body(lo..<hi) }
    }
}

/// Runs `body(i)` for each i in 0..<n on its own task (n small: one task per worker).
@inline(__always)
public func parallelForEach(_ n: Int, _ body: (Int) -> Void) {
    if n == 1 { body(0); return }
    DispatchQueue.concurrentPerform(iterations: n, execute: body)
}

#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif
