import Dispatch

/// Runs `body(i)` for i in 0..<n, spread over the cores in contiguous chunks.
/// For element-wise and per-row kernels; BLAS-calling bodies use `parallelBLAS`.
@inline(__always)
public func parallelFor(_ n: Int, minChunk: Int = 1, _ body: (Range<Int>) -> Void) {
    let workers = Parallelism.workers
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

public enum Parallelism {
    /// Number of worker threads for our own parallel loops (set from --threads).
    nonisolated(unsafe) public static var workers: Int = defaultWorkers()

    static func defaultWorkers() -> Int {
        if let s = getenv("FLOWTUNE_THREADS"), let n = Int(String(cString: s)), n > 0 { return n }
        return max(1, min(8, sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }

    /// A message when FLOWTUNE_THREADS is set but not a positive integer.
    public static var environmentProblem: String? {
        guard let s = getenv("FLOWTUNE_THREADS") else { return nil }
        let v = String(cString: s)
        if let n = Int(v), n > 0 { return nil }
        return "FLOWTUNE_THREADS='\(v)' is not a positive number of threads"
    }

    /// Sets the number of threads for GEMMs and for our own parallel loops.
    public static func setThreads(_ n: Int) { workers = max(1, n) }
}

#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif
