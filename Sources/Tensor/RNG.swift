import CKernels

/// A seeded, splittable pseudo-random generator (xoshiro256**, seeded through SplitMix64).
///
/// A run is reproducible bit for bit from its seed on the same machine: every consumer of
/// randomness receives its own generator, derived with `split(_:)` from a parent and a
/// purpose label, so adding a draw in one place never shifts the numbers seen elsewhere.
public struct RNG: Sendable, Codable, Equatable {
    public private(set) var state: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var sm = seed
        func next() -> UInt64 {
            sm &+= 0x9E37_79B9_7F4A_7C15
            var z = sm
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        state = (next(), next(), next(), next())
    }

    /// Restores a generator from the four words of `state` (for checkpoints).
    public init(state words: [UInt64]) {
        precondition(words.count == 4, "RNG state has four words")
        state = (words[0], words[1], words[2], words[3])
    }

    public var stateWords: [UInt64] { [state.0, state.1, state.2, state.3] }

    /// A child generator for `stream`: independent of the parent's future draws.
    public func split(_ stream: UInt64) -> RNG {
        RNG(seed: state.0 ^ (state.2 &* 0x2545_F491_4F6C_DD1D) ^ (stream &* 0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03)
    }

    @inline(__always)
    public mutating func nextUInt64() -> UInt64 {
        let result = ((state.1 &* 5) << 7 | (state.1 &* 5) >> 57) &* 9
        let t = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= t
        state.3 = (state.3 << 45) | (state.3 >> 19)
        return result
    }

    /// Uniform in [0, 1) with 24 bits of precision.
    @inline(__always)
    public mutating func uniform() -> Float {
        Float(nextUInt64() >> 40) * (1.0 / 16_777_216.0)
    }

    /// Uniform in [lo, hi).
    @inline(__always)
    public mutating func uniform(_ lo: Float, _ hi: Float) -> Float { lo + (hi - lo) * uniform() }

    /// Uniform integer in 0..<n.
    @inline(__always)
    public mutating func int(_ n: Int) -> Int {
        precondition(n > 0)
        return Int((nextUInt64() >> 11) % UInt64(n))
    }

    /// Shuffles `values` in place (Fisher-Yates).
    public mutating func shuffle<T>(_ values: inout [T]) {
        guard values.count > 1 else { return }
        for i in stride(from: values.count - 1, to: 0, by: -1) { values.swapAt(i, int(i + 1)) }
    }

    /// Uniform in [0, 1) with 53 bits of precision (one word), the inputs of `normal()`.
    @inline(__always)
    mutating func uniform53() -> Double { Double(nextUInt64() >> 11) * 0x1.0p-53 }

    /// Standard normal sample (Box-Muller in double precision: CKernels' ft_normal).
    @inline(__always)
    public mutating func normal() -> Float {
        let u1 = uniform53(), u2 = uniform53()
        return ft_normal(u1, u2)
    }

    /// Fills `buffer` with standard normal samples times `scale`: the values of `normal() * scale`
    /// drawn `buffer.count` times, and the stream moved as far, computed a block at a time
    /// (CKernels' ft_normals: 8 at a time on the AVX-512 path, 4 on the AVX2 one). Worker threads
    /// see no binding of `Compute.current`: a parallel loop passes its caller's `kernels`.
    public mutating func fillNormal(_ buffer: UnsafeMutableBufferPointer<Float>, scale: Float = 1,
                                    kernels: KernelPath = Compute.current.kernels) {
        guard let out = buffer.baseAddress else { return }
        let width: Int32 = switch kernels { case .avx512: 8; case .avx2: 4; case .openblas: 1 }
        let block = 512
        withUnsafeTemporaryAllocation(of: Double.self, capacity: 2 * block) { u in
            let u1 = u.baseAddress!, u2 = u1 + block
            var done = 0
            while done < buffer.count {
                let m = min(block, buffer.count - done)
                for j in 0..<m { u1[j] = uniform53(); u2[j] = uniform53() }
                ft_normals(u1, u2, m, scale, out + done, width)
                done += m
            }
        }
    }

    /// Moves the stream past `n` draws of `normal()` (two words each) without computing them:
    /// a process that leaves another's samples to it still keeps the stream in step.
    public mutating func skipNormals(_ n: Int) { for _ in 0..<(2 * n) { _ = nextUInt64() } }

    public mutating func normals(_ n: Int, scale: Float = 1) -> [Float] {
        var out = [Float](repeating: 0, count: n)
        out.withUnsafeMutableBufferPointer { fillNormal($0, scale: scale) }
        return out
    }

    public static func == (a: RNG, b: RNG) -> Bool { a.stateWords == b.stateWords }

    enum CodingKeys: String, CodingKey { case state }
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let words = try c.decode([UInt64].self, forKey: .state)
        guard words.count == 4 else {
            throw DecodingError.dataCorruptedError(forKey: .state, in: c, debugDescription: "RNG state needs 4 words")
        }
        self.init(state: words)
    }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(stateWords, forKey: .state)
    }
}
