import Testing
import CBLAS
import CKernels
@testable import Tensor
import Foundation

/// flowtune's own GEMMs (CKernels: AVX-512 and AVX2, each where the CPU runs it) against a
/// double-precision reference, over every transposition, edge tiles in both directions, padded
/// leading dimensions, several k blocks, more columns than one column block, and both beta paths.
@Suite struct GemmTests {
    /// The kernel paths with their own kernels that this CPU runs.
    static let own = KernelPath.available.filter { $0.gemm != nil }

    static func gemm(_ path: KernelPath, _ ta: Bool, _ tb: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float, _ a: [Float], _ lda: Int,
                     _ b: [Float], _ ldb: Int, _ beta: Float, _ c: inout [Float], _ ldc: Int) -> Int32 {
        path.gemm!(ta ? 1 : 0, tb ? 1 : 0, m, n, k, alpha, a, lda, b, ldb, beta, &c, ldc, nil, nil, 0)
    }

    typealias Case = (m: Int, n: Int, k: Int)
    static let shapes: [Case] = [(1, 1, 1), (13, 33, 7), (12, 32, 256), (25, 70, 300), (197, 65, 513), (40, 2100, 20), (3, 17, 600)]

    /// Row-major reference: C = alpha op(A) op(B) + beta C, in double.
    static func reference(_ ta: Bool, _ tb: Bool, _ s: Case, _ alpha: Float, _ a: [Float], _ lda: Int,
                          _ b: [Float], _ ldb: Int, _ beta: Float, _ c: [Float], _ ldc: Int) -> [Double] {
        var out = c.map(Double.init)
        for i in 0..<s.m { for j in 0..<s.n {
            var sum = 0.0
            for p in 0..<s.k {
                let x = ta ? a[p * lda + i] : a[i * lda + p]
                let y = tb ? b[j * ldb + p] : b[p * ldb + j]
                sum += Double(x) * Double(y)
            }
            out[i * ldc + j] = Double(alpha) * sum + (beta == 0 ? 0 : Double(beta) * Double(c[i * ldc + j]))
        } }
        return out
    }

    @Test(arguments: own, [(false, false), (false, true), (true, false), (true, true)])
    func ownKernelMatchesReference(path: KernelPath, transposes: (Bool, Bool)) {
        let (ta, tb) = transposes
        var rng = RNG(seed: 11)
        for s in Self.shapes {
            // leading dimensions padded by 3, so that rows are not 64-byte aligned
            let lda = (ta ? s.m : s.k) + 3, ldb = (tb ? s.k : s.n) + 3, ldc = s.n + 3
            let a = rng.normals((ta ? s.k : s.m) * lda), b = rng.normals((tb ? s.n : s.k) * ldb)
            for (alpha, beta) in [(Float(0.7), Float(0)), (Float(-1.1), Float(1.3))] {
                var c = rng.normals(s.m * ldc)
                if beta == 0 { for i in 0..<s.m { c[i * ldc] = .nan } }   // never read when beta == 0
                let expected = Self.reference(ta, tb, s, alpha, a, lda, b, ldb, beta, c, ldc)
                let rc = Self.gemm(path, ta, tb, s.m, s.n, s.k, alpha, a, lda, b, ldb, beta, &c, ldc)
                #expect(rc == 0)
                var worst = 0.0, untouched = true
                for i in 0..<s.m {
                    for j in 0..<s.n { worst = max(worst, abs(Double(c[i * ldc + j]) - expected[i * ldc + j])) }
                    for j in s.n..<ldc where Double(c[i * ldc + j]) != expected[i * ldc + j] { untouched = false }
                }
                #expect(worst < 1e-4 * Double(s.k).squareRoot() + 1e-5, "\(s) ta=\(ta) tb=\(tb) beta=\(beta): \(worst)")
                #expect(untouched, "\(s): the padding between rows of C was written")
            }
        }
    }

    /// A non-transposed A whose row stride is one the kernel reads in place (128, 256, 384, 512):
    /// full panels unpacked, the partial panel packed, several row blocks and k blocks.
    @Test(arguments: own, [128, 256, 384, 512])
    func inPlaceRowStrides(path: KernelPath, lda: Int) {
        var rng = RNG(seed: 17)
        for (m, k) in [(37, lda), (200, min(lda, 300)), (13, 100)] {
            let s: Case = (m: m, n: 70, k: k)
            let a = rng.normals(m * lda), b = rng.normals(k * s.n)
            for tb in [false, true] {
                let bm = tb ? (0..<(s.n * k)).map { b[($0 % k) * s.n + $0 / k] } : b   // the same op(B), stored transposed
                var c = rng.normals(m * s.n)
                let expected = Self.reference(false, tb, s, 1, a, lda, bm, tb ? k : s.n, 0.5, c, s.n)
                #expect(Self.gemm(path, false, tb, m, s.n, k, 1, a, lda, bm, tb ? k : s.n, 0.5, &c, s.n) == 0)
                var worst = 0.0
                for i in 0..<(m * s.n) { worst = max(worst, abs(Double(c[i]) - expected[i])) }
                #expect(worst < 1e-3, "lda=\(lda) m=\(m) k=\(k) tb=\(tb): \(worst)")
            }
        }
    }

    @Test(arguments: own)
    func emptyInnerDimensionScalesC(path: KernelPath) {
        var c: [Float] = [1, 2, 3, 4, 5, 6]
        let a: [Float] = [9], b: [Float] = [9]
        #expect(Self.gemm(path, false, false, 2, 3, 0, 1, a, 1, b, 3, 0.5, &c, 3) == 0)
        #expect(c == [0.5, 1, 1.5, 2, 2.5, 3])
        c[0] = .nan
        #expect(Self.gemm(path, false, false, 2, 3, 0, 1, a, 1, b, 3, 0, &c, 3) == 0)
        #expect(c == [0, 0, 0, 0, 0, 0])
    }

    /// The fused epilogue (bias per column, GELU of the result into a second matrix), through
    /// the own kernel and through the OpenBLAS path, against the reference and exact tanh GELU.
    @Test(arguments: KernelPath.available)
    func biasAndGeluEpilogue(path: KernelPath) throws {
        let own = path.gemm
        var rng = RNG(seed: 13)
        for s in [(m: 25, n: 70, k: 300), (m: 13, n: 33, k: 7), (m: 4, n: 5, k: 0)] {
            let a = rng.normals(s.m * max(s.k, 1)), b = rng.normals(s.n * max(s.k, 1), scale: 0.1)
            let bias = rng.normals(s.n)
            for beta in [Float(0), 0.5] {
                var c = rng.normals(s.m * s.n), g = [Float](repeating: .nan, count: s.m * s.n)
                let expected = Self.reference(false, true, s, 1, a, max(s.k, 1), b, max(s.k, 1), beta, c, s.n)
                a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in bias.withUnsafeBufferPointer { biasp in
                    c.withUnsafeMutableBufferPointer { cp in g.withUnsafeMutableBufferPointer { gp in
                        if let own {
                            #expect(own(0, 1, s.m, s.n, s.k, 1, ap.baseAddress, max(s.k, 1), bp.baseAddress, max(s.k, 1),
                                                   beta, cp.baseAddress, s.n, biasp.baseAddress, gp.baseAddress, s.n) == 0)
                        } else {
                            sgemmOpenBLAS(false, true, s.m, s.n, s.k, 1, ap.baseAddress!, max(s.k, 1), bp.baseAddress!, max(s.k, 1),
                                          beta, cp.baseAddress!, s.n, biasp.baseAddress!, gp.baseAddress!)
                        }
                    } }
                } } }
                for i in 0..<s.m { for j in 0..<s.n {
                    let want = expected[i * s.n + j] + Double(bias[j])
                    #expect(abs(Double(c[i * s.n + j]) - want) < 1e-4, "\(s) C[\(i),\(j)]")
                    let gelu = 0.5 * want * (1 + tanh(0.797_884_560_8 * (want + 0.044715 * want * want * want)))
                    #expect(abs(Double(g[i * s.n + j]) - gelu) < 1e-4, "\(s) GELU[\(i),\(j)]")
                } }
            }
        }
    }

    /// One head of attention against a double-precision reference: tails in tokens and head
    /// dimensions, a key mask, and a mask that hides every key (all-zero output).
    @Test(arguments: own)
    func attentionHeadMatchesReference(path: KernelPath) {
        var rng = RNG(seed: 14)
        for (T, hd) in [(13, 16), (80, 32), (21, 40)] {
            let ld = 3 * hd + 5
            let qkv = rng.normals(T * ld)
            for maskKind in 0..<3 {   // none, some keys masked, all masked
                let mask: [Float]? = maskKind == 0 ? nil : (0..<T).map { maskKind == 2 ? 0 : ($0 % 3 == 1 ? 0 : 1) }
                var probs = [Float](repeating: .nan, count: T * T), out = [Float](repeating: .nan, count: T * hd)
                let scale = 1 / Float(hd).squareRoot()
                let rc = qkv.withUnsafeBufferPointer { b in
                    path.attention!.forward(T, hd, scale, b.baseAddress!, b.baseAddress! + hd, b.baseAddress! + 2 * hd, ld,
                                         mask, &probs, &out, hd)
                }
                #expect(rc == 0)
                var worst = 0.0
                for i in 0..<T {
                    var logits = [Double](repeating: -.infinity, count: T)
                    for j in 0..<T where (mask?[j] ?? 1) != 0 {
                        var dot = 0.0
                        for d in 0..<hd { dot += Double(qkv[i * ld + d]) * Double(qkv[j * ld + hd + d]) }
                        logits[j] = dot * Double(scale)
                    }
                    let mx = logits.max()!
                    let e = logits.map { mx == -.infinity ? 0 : exp($0 - mx) }
                    let z = e.reduce(0, +)
                    for j in 0..<T {
                        let pij = z == 0 ? 0 : e[j] / z
                        worst = max(worst, abs(Double(probs[i * T + j]) - pij))
                        if (mask?[j] ?? 1) == 0 { #expect(probs[i * T + j] == 0) }
                    }
                    for d in 0..<hd {
                        var o = 0.0
                        for j in 0..<T where z != 0 { o += e[j] / z * Double(qkv[j * ld + 2 * hd + d]) }
                        worst = max(worst, abs(Double(out[i * hd + d]) - o))
                    }
                }
                #expect(worst < 1e-5, "T=\(T) hd=\(hd) mask=\(maskKind): \(worst)")
            }
        }
    }

    /// The backward of one head against the same formulas in double precision: dV = P^T dO,
    /// dS = P (dO V^T - rowsum), dQ = scale dS K, dK = scale dS^T Q; several register tiles
    /// and tails in both directions.
    @Test(arguments: own)
    func attentionHeadBackwardMatchesReference(path: KernelPath) {
        var rng = RNG(seed: 16)
        for (T, hd) in [(37, 20), (80, 32), (9, 48)] {
            let ld = 3 * hd + 3, ldo = hd + 2, ldd = 3 * hd + 1
            let qkv = rng.normals(T * ld), dout = rng.normals(T * ldo)
            // probabilities: a softmax of random logits with some keys masked
            var probs = [Float](repeating: 0, count: T * T)
            for i in 0..<T {
                let e = (0..<T).map { j in j % 4 == 2 ? 0 : exp(Double(rng.normal())) }
                let z = e.reduce(0, +)
                for j in 0..<T { probs[i * T + j] = Float(e[j] / z) }
            }
            let scale = 1 / Float(hd).squareRoot()
            var dqkv = [Float](repeating: .nan, count: T * ldd)
            let rc = qkv.withUnsafeBufferPointer { b in
                dqkv.withUnsafeMutableBufferPointer { d in
                    path.attention!.backward(T, hd, scale, b.baseAddress!, b.baseAddress! + hd, b.baseAddress! + 2 * hd, ld,
                                          probs, dout, ldo, d.baseAddress!, d.baseAddress! + hd, d.baseAddress! + 2 * hd, ldd)
                }
            }
            #expect(rc == 0)
            func q(_ i: Int, _ d: Int) -> Double { Double(qkv[i * ld + d]) }
            func k(_ i: Int, _ d: Int) -> Double { Double(qkv[i * ld + hd + d]) }
            func v(_ i: Int, _ d: Int) -> Double { Double(qkv[i * ld + 2 * hd + d]) }
            func p(_ i: Int, _ j: Int) -> Double { Double(probs[i * T + j]) }
            func g(_ i: Int, _ d: Int) -> Double { Double(dout[i * ldo + d]) }
            var ds = [Double](repeating: 0, count: T * T)
            for i in 0..<T {
                var dp = [Double](repeating: 0, count: T)
                for j in 0..<T { for d in 0..<hd { dp[j] += g(i, d) * v(j, d) } }
                let sum = (0..<T).reduce(0.0) { $0 + p(i, $1) * dp[$1] }
                for j in 0..<T { ds[i * T + j] = p(i, j) * (dp[j] - sum) }
            }
            var worst = 0.0
            for j in 0..<T { for d in 0..<hd {
                var dv = 0.0, dq = 0.0, dk = 0.0
                for i in 0..<T {
                    dv += p(i, j) * g(i, d)
                    dq += ds[j * T + i] * k(i, d)
                    dk += ds[i * T + j] * q(i, d)
                }
                worst = max(worst, abs(Double(dqkv[j * ldd + 2 * hd + d]) - dv), abs(Double(dqkv[j * ldd + d]) - Double(scale) * dq),
                            abs(Double(dqkv[j * ldd + hd + d]) - Double(scale) * dk))
            } }
            #expect(worst < 1e-5, "T=\(T) hd=\(hd): \(worst)")
        }
    }

    /// x rounded to bfloat16 as the bf16 GEMM rounds its inputs (to nearest, ties to even).
    static func bf16(_ x: Float) -> Float {
        let b = x.bitPattern
        return Float(bitPattern: (b &+ 0x7FFF &+ ((b >> 16) & 1)) & 0xFFFF_0000)
    }

    /// The bf16 GEMM is the double-precision product of its inputs rounded to bf16, to within fp32
    /// accumulation, over every transposition and the shapes above (odd k: a half-filled last
    /// pair; k past one block of 512; more columns than a column block), with bias and GELU; and
    /// it is not the unrounded product (the rounding is done).
    @Test(.enabled(if: Precision.cpuHasBF16), arguments: [(false, false), (false, true), (true, false), (true, true)])
    func bf16KernelMatchesRoundedReference(transposes: (Bool, Bool)) {
        let (ta, tb) = transposes
        var rng = RNG(seed: 23)
        for s in Self.shapes + [(m: 30, n: 40, k: 1025)] {
            let lda = (ta ? s.m : s.k) + 3, ldb = (tb ? s.k : s.n) + 3, ldc = s.n + 3
            let a = rng.normals((ta ? s.k : s.m) * lda), b = rng.normals((tb ? s.n : s.k) * ldb)
            let bias = rng.normals(s.n)
            for (alpha, beta) in [(Float(0.7), Float(0)), (Float(-1.1), Float(1.3))] {
                var c = rng.normals(s.m * ldc), g = [Float](repeating: .nan, count: s.m * ldc)
                if beta == 0 { for i in 0..<s.m { c[i * ldc] = .nan } }
                let rounded = Self.reference(ta, tb, s, alpha, a.map(Self.bf16), lda, b.map(Self.bf16), ldb, beta, c, ldc)
                let exact = Self.reference(ta, tb, s, alpha, a, lda, b, ldb, beta, c, ldc)
                let rc = ft_bf16_gemm_fused(ta ? 1 : 0, tb ? 1 : 0, s.m, s.n, s.k, alpha, a, lda, b, ldb, beta, &c, ldc, bias, &g, ldc)
                #expect(rc == 0)
                var worst = 0.0, far = 0.0, worstGelu = 0.0
                for i in 0..<s.m { for j in 0..<s.n {
                    let got = Double(c[i * ldc + j])
                    worst = max(worst, abs(got - rounded[i * ldc + j] - Double(bias[j])))
                    far = max(far, abs(got - exact[i * ldc + j] - Double(bias[j])))
                    let gelu = 0.5 * got * (1 + tanh(0.797_884_560_8 * (got + 0.044715 * got * got * got)))
                    worstGelu = max(worstGelu, abs(Double(g[i * ldc + j]) - gelu))
                } }
                #expect(worst < 1e-4 * Double(s.k).squareRoot() + 1e-5, "\(s) ta=\(ta) tb=\(tb) beta=\(beta): \(worst)")
                #expect(worstGelu < 1e-4, "\(s): GELU \(worstGelu)")
                if s.k >= 7 { #expect(far > 1e-3, "\(s): the bf16 product equals the fp32 one (\(far))") }
            }
        }
    }

    /// `--precision bf16` is refused where it cannot run: on the AVX2 and OpenBLAS paths always, on
    /// the AVX-512 path when the CPU lacks AVX512-BF16; fp32 runs on every available path.
    @Test func precisionNeedsItsKernels() {
        for path in KernelPath.available {
            #expect(path.runs(.fp32))
            #expect(path.runs(.bf16) == (path == .avx512 && Precision.cpuHasBF16), "\(path)")
            #expect((try? Compute(kernels: path, precision: .bf16).check()) != nil || !path.runs(.bf16))
        }
        #expect(throws: ComputeError.self) { try Compute(kernels: .openblas, precision: .bf16).check() }
    }

    /// The dispatching wrapper agrees with OpenBLAS itself on every kernel path, 1 and 2 threads.
    @Test(arguments: KernelPath.available, [1, 2])
    func wrapperAgreesWithOpenBLAS(path: KernelPath, workers: Int) {
        var rng = RNG(seed: 12)
        let (m, n, k) = (301, 129, 130)
        let a = rng.normals(m * k), b = rng.normals(n * k)
        var c1 = [Float](repeating: 0, count: m * n), c2 = c1
        Compute(kernels: path, workers: workers).run {
            sgemm(transB: true, m: m, n: n, k: k, a: a, lda: k, b: b, ldb: k, c: &c1, ldc: n)
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k), 1, a, Int32(k), b, Int32(k), 0, &c2, Int32(n))
        var worst: Float = 0
        for i in c1.indices { worst = max(worst, abs(c1[i] - c2[i])) }
        #expect(worst < 1e-3)
    }
}
