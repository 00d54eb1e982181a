/// A dense, row-major Float32 tensor: a shape and a contiguous buffer.
///
/// The network's hot path works on raw buffers through the layer kernels (Kernels.swift,
/// Attention.swift); `Tensor` is the value type at the API boundary — images, batches,
/// checkpoints — with the reshapes, transposes, slices and products those need.
public struct Tensor: Equatable, Sendable {
    public private(set) var shape: [Int]
    public var data: [Float]

    public init(shape: [Int], data: [Float]) {
        precondition(shape.reduce(1, *) == data.count, "Tensor: shape \(shape) does not match \(data.count) values")
        self.shape = shape; self.data = data
    }
    public init(zeros shape: [Int]) { self.init(shape: shape, data: [Float](repeating: 0, count: shape.reduce(1, *))) }
    public init(repeating value: Float, shape: [Int]) {
        self.init(shape: shape, data: [Float](repeating: value, count: shape.reduce(1, *)))
    }
    public static func randn(_ shape: [Int], rng: inout RNG, scale: Float = 1) -> Tensor {
        Tensor(shape: shape, data: rng.normals(shape.reduce(1, *), scale: scale))
    }

    public var count: Int { data.count }
    public var rank: Int { shape.count }

    public subscript(_ idx: Int...) -> Float {
        get { data[offset(idx)] }
        set { data[offset(idx)] = newValue }
    }
    private func offset(_ idx: [Int]) -> Int {
        precondition(idx.count == shape.count, "Tensor: index rank")
        var o = 0
        for (i, n) in zip(idx, shape) { precondition(i >= 0 && i < n, "Tensor: index out of range"); o = o * n + i }
        return o
    }

    // MARK: shape

    /// Same values, new shape (one dimension may be -1).
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var s = newShape
        if let k = s.firstIndex(of: -1) { s[k] = count / s.enumerated().filter { $0.offset != k }.map(\.element).reduce(1, *) }
        return Tensor(shape: s, data: data)
    }

    /// Swaps the last two dimensions: (..., M, N) -> (..., N, M).
    public func transposedLast2() -> Tensor {
        precondition(rank >= 2)
        let m = shape[rank - 2], n = shape[rank - 1], batch = count / (m * n)
        var out = [Float](repeating: 0, count: count)
        for b in 0..<batch {
            for i in 0..<m { for j in 0..<n { out[b * m * n + j * m + i] = data[b * m * n + i * n + j] } }
        }
        var s = shape; s.swapAt(rank - 2, rank - 1)
        return Tensor(shape: s, data: out)
    }

    /// Rows lo..<hi of the first dimension.
    public func slice(_ range: Range<Int>) -> Tensor {
        precondition(range.lowerBound >= 0 && range.upperBound <= shape[0])
        let inner = count / shape[0]
        var s = shape; s[0] = range.count
        return Tensor(shape: s, data: Array(data[(range.lowerBound * inner)..<(range.upperBound * inner)]))
    }

    /// Concatenation along the first dimension.
    public static func concat(_ parts: [Tensor]) -> Tensor {
        precondition(!parts.isEmpty)
        let tail = Array(parts[0].shape.dropFirst())
        precondition(parts.allSatisfy { Array($0.shape.dropFirst()) == tail }, "concat: shapes differ")
        return Tensor(shape: [parts.map { $0.shape[0] }.reduce(0, +)] + tail, data: parts.flatMap(\.data))
    }

    // MARK: products (cblas_sgemm)

    /// (M, K) x (K, N) -> (M, N).
    public func matmul(_ other: Tensor) -> Tensor {
        precondition(rank == 2 && other.rank == 2 && shape[1] == other.shape[0], "matmul: \(shape) x \(other.shape)")
        return Tensor.batchedMatmul(reshaped([1] + shape), other.reshaped([1] + other.shape)).reshaped([shape[0], other.shape[1]])
    }

    /// (B, M, K) x (B, K, N) -> (B, M, N), one sgemm per batch entry.
    public static func batchedMatmul(_ a: Tensor, _ b: Tensor) -> Tensor {
        precondition(a.rank == 3 && b.rank == 3 && a.shape[0] == b.shape[0] && a.shape[2] == b.shape[1],
                     "batchedMatmul: \(a.shape) x \(b.shape)")
        let B = a.shape[0], M = a.shape[1], K = a.shape[2], N = b.shape[2]
        var out = Tensor(zeros: [B, M, N])
        a.data.withUnsafeBufferPointer { ap in
            b.data.withUnsafeBufferPointer { bp in
                out.data.withUnsafeMutableBufferPointer { cp in
                    for i in 0..<B {
                        sgemm(m: M, n: N, k: K, a: ap.baseAddress! + i * M * K, lda: K,
                              b: bp.baseAddress! + i * K * N, ldb: N, c: cp.baseAddress! + i * M * N, ldc: N)
                    }
                }
            }
        }
        return out
    }

    // MARK: element-wise and reductions

    public func map(_ f: (Float) -> Float) -> Tensor { Tensor(shape: shape, data: data.map(f)) }
    public static func + (a: Tensor, b: Tensor) -> Tensor { a.zipWith(b, +) }
    public static func - (a: Tensor, b: Tensor) -> Tensor { a.zipWith(b, -) }
    public static func * (a: Tensor, b: Tensor) -> Tensor { a.zipWith(b, *) }
    public static func * (a: Tensor, s: Float) -> Tensor { a.map { $0 * s } }
    private func zipWith(_ b: Tensor, _ f: (Float, Float) -> Float) -> Tensor {
        precondition(shape == b.shape, "element-wise op: \(shape) vs \(b.shape)")
        var out = data
        for i in out.indices { out[i] = f(data[i], b.data[i]) }
        return Tensor(shape: shape, data: out)
    }
    public func sum() -> Float { Float(data.reduce(0.0) { $0 + Double($1) }) }
    public func mean() -> Float { sum() / Float(count) }
    /// Sum over the last dimension: (..., N) -> (...).
    public func sumLast() -> Tensor {
        let n = shape.last!, rows = count / n
        var out = [Float](repeating: 0, count: rows)
        for r in 0..<rows { for j in 0..<n { out[r] += data[r * n + j] } }
        return Tensor(shape: Array(shape.dropLast()), data: out)
    }
    public func maxAbsDiff(_ other: Tensor) -> Float {
        precondition(shape == other.shape)
        var m: Float = 0
        for i in data.indices { m = max(m, abs(data[i] - other.data[i])) }
        return m
    }
}
