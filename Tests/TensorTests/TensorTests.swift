import Testing
import Tensor
import CKernels
import Foundation

@Suite struct TensorTests {
    @Test func crc32MatchesTheStandardCheckValues() {
        #expect(crc32(Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(crc32([UInt8]()) == 0)
        // every length 0...40 (the 8-byte rounds and the tail) against the bit-by-bit definition
        var rng = RNG(seed: 4)
        let bytes = (0..<40).map { _ in UInt8(truncatingIfNeeded: rng.nextUInt64()) }
        for n in 0...40 {
            var c: UInt32 = 0xFFFF_FFFF
            for b in bytes.prefix(n) {
                c ^= UInt32(b)
                for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
            }
            #expect(crc32(Array(bytes.prefix(n))) == ~c, "length \(n)")
        }
        // continuing over two parts equals one pass
        let whole = crc32(bytes), first = crc32(Array(bytes.prefix(13)))
        #expect(Array(bytes.suffix(27)).withUnsafeBytes { crc32($0, continuing: first) } == whole)
    }

    @Test func crc32cMatchesTheCastagnoliCheckValues() {
        // the check value of CRC-32C and RFC 3720's (iSCSI) test vectors
        #expect(crc32c(Array("123456789".utf8)) == 0xE306_9283)
        #expect(crc32c([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(crc32c([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(crc32c((0..<32).map { UInt8($0) }) == 0x46DD_794E)
        #expect(crc32c([UInt8]()) == 0)
    }

    @Test func gemmMatchesNaiveProductForEveryTransposition() {
        var rng = RNG(seed: 1)
        let (m, n, k) = (7, 9, 5)
        let a = rng.normals(m * k), b = rng.normals(k * n)     // row-major (m, k) and (k, n)
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let aStored = ta ? transposed(a, rows: m, cols: k) : a, bStored = tb ? transposed(b, rows: k, cols: n) : b
            var c = [Float](repeating: 0, count: m * n)
            sgemm(transA: ta, transB: tb, m: m, n: n, k: k, a: aStored, lda: ta ? m : k, b: bStored, ldb: tb ? k : n, c: &c, ldc: n)
            for i in 0..<m { for j in 0..<n {
                var s: Float = 0
                for l in 0..<k { s += a[i * k + l] * b[l * n + j] }
                #expect(abs(c[i * n + j] - s) < 1e-5)
            } }
        }
    }

    @Test(arguments: KernelPath.available)
    func largeParallelGemmEqualsSerialSplit(path: KernelPath) {
        // Big enough to be split over two threads by rows and by columns.
        Compute(kernels: path, workers: 2).run { Self.parallelGemmEqualsSerialSplit() }
    }

    static func parallelGemmEqualsSerialSplit() {
        var rng = RNG(seed: 2)
        for (m, n, k) in [(300, 130, 64), (9, 1200, 128)] {
            let a = rng.normals(m * k), b = rng.normals(k * n)
            var c1 = [Float](repeating: 0, count: m * n), c2 = c1
            sgemm(m: m, n: n, k: k, a: a, lda: k, b: b, ldb: n, c: &c1, ldc: n, parallel: true)
            sgemm(m: m, n: n, k: k, a: a, lda: k, b: b, ldb: n, c: &c2, ldc: n, parallel: false)
            var split: Float = 0
            for i in c1.indices { split = max(split, abs(c1[i] - c2[i])) }
            #expect(split < 1e-4)   // the split may round differently, but not by more
            // transposed operands
            var c3 = [Float](repeating: 0, count: m * n)
            let at = transposed(a, rows: m, cols: k), bt = transposed(b, rows: k, cols: n)
            sgemm(transA: true, transB: true, m: m, n: n, k: k, a: at, lda: m, b: bt, ldb: k, c: &c3, ldc: n)
            var worst: Float = 0
            for i in c1.indices { worst = max(worst, abs(c1[i] - c3[i])) }
            #expect(worst < 1e-3)
        }
    }

    @Test func rngIsReproducibleAndSplitsIndependently() {
        var a = RNG(seed: 42), b = RNG(seed: 42)
        #expect((0..<100).map { _ in a.nextUInt64() } == (0..<100).map { _ in b.nextUInt64() })
        let p = RNG(seed: 7)
        var c1 = p.split(1), c2 = p.split(2), c1b = p.split(1)
        let x = c1.normals(50), y = c2.normals(50)
        #expect(x == c1b.normals(50))
        #expect(x != y)
        // moments of the normal generator
        var r = RNG(seed: 9)
        let s = r.normals(200_000)
        let mean = s.reduce(0, +) / Float(s.count)
        let variance = s.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Float(s.count)
        #expect(abs(mean) < 0.01 && abs(variance - 1) < 0.02)
        var u = RNG(seed: 10)
        let us = (0..<100_000).map { _ in u.uniform() }
        #expect(us.allSatisfy { $0 >= 0 && $0 < 1 })
        #expect(abs(us.reduce(0, +) / Float(us.count) - 0.5) < 0.01)
    }

    /// The block draws of every kernel path (8 or 4 at a time through glibc's vector log and cos)
    /// are the scalar `normal()` draws, bit for bit, and leave the stream where they would: over a
    /// count that is no multiple of the block or of the vector width, with and without a scale,
    /// including a word pair whose uniform is 0 (log(1)) and one whose is the largest below 1.
    @Test(arguments: KernelPath.available)
    func blockNormalsAreTheScalarDraws(path: KernelPath) {
        for (seed, count, scale) in [(UInt64(3), 300_007, Float(1)), (5, 13, 0.37), (8, 1, -2.5)] {
            var scalar = RNG(seed: seed), block = RNG(seed: seed)
            let expected = (0..<count).map { _ in scalar.normal() * scale }
            var got = [Float](repeating: .nan, count: count)
            got.withUnsafeMutableBufferPointer { block.fillNormal($0, scale: scale, kernels: path) }
            #expect(got.elementsEqual(expected) { $0.bitPattern == $1.bitPattern }, "\(path), seed \(seed)")
            #expect(block == scalar)
        }
        // extreme uniforms: word >> 11 == 0 (u1 = 0: radius 0) and all ones (u just below 1)
        let words: [UInt64] = [0, 0, .max, .max, 0, .max, .max, 0, 1 << 11, 1 << 63, 12345 << 11, 0x7FF, 1 << 52, .max >> 1, 3, 7 << 40]
        let u1 = (0..<8).map { Double(words[2 * $0] >> 11) * 0x1.0p-53 }, u2 = (0..<8).map { Double(words[2 * $0 + 1] >> 11) * 0x1.0p-53 }
        let extreme = (0..<8).map { i in Float((-2.0 * log(1.0 - u1[i])).squareRoot() * cos(2.0 * Double.pi * u2[i])) }
        let width: Int32 = switch path { case .avx512: 8; case .avx2: 4; case .openblas: 1 }
        var out = [Float](repeating: .nan, count: 8)
        ft_normals(u1, u2, 8, 1, &out, width)
        #expect(out.elementsEqual(extreme) { $0.bitPattern == $1.bitPattern }, "\(path)")
    }

    @Test func fastExpIsAccurate() {
        for x in stride(from: Float(-80), through: 80, by: 0.37) {
            let ref = Float(_exp(Double(x)))
            #expect(abs(fastExp(x) - ref) / ref < 1e-6)
        }
    }

    @Test func adamWStepMatchesClosedForm() {
        // First step: m = (1-b1) g, v = (1-b2) g^2, bias-corrected -> update lr * g/|g| (plus decay).
        var opt = AdamW(count: 3, lr: 0.1, weightDecay: 0.5, maxGradNorm: nil)
        let params = FloatBuffer([1, -2, 3]), grads = FloatBuffer([0.5, -4, 0])
        opt.update(params: params.buffer, grads: grads.buffer)
        let expected: [Float] = [1 - 0.1 * 0.5 * 1 - 0.1, -2 - 0.1 * 0.5 * -2 + 0.1, 3 - 0.1 * 0.5 * 3]
        for i in 0..<3 { #expect(abs(params[i] - expected[i]) < 1e-5) }
    }

    @Test func adamWClipsTheGlobalGradientNorm() {
        var opt = AdamW(count: 2, lr: 1, maxGradNorm: 1.0)
        let params = FloatBuffer([0, 0]), grads = FloatBuffer([30, 40])
        let norm = opt.update(params: params.buffer, grads: grads.buffer)
        #expect(abs(norm - 50) < 1e-4)
        // after clipping the moments see g = (0.6, 0.8)
        #expect(abs(opt.m[0] - 0.1 * 0.6) < 1e-5 && abs(opt.m[1] - 0.1 * 0.8) < 1e-5)
    }
}

/// The (cols, rows) transpose of a row-major (rows, cols) matrix.
func transposed(_ x: [Float], rows: Int, cols: Int) -> [Float] {
    var t = [Float](repeating: 0, count: x.count)
    for i in 0..<rows { for j in 0..<cols { t[j * rows + i] = x[i * cols + j] } }
    return t
}
