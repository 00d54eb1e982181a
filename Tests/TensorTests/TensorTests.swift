import Testing
import Tensor

@Suite struct TensorTests {
    @Test func matmulMatchesNaiveProduct() {
        var rng = RNG(seed: 1)
        let a = Tensor.randn([7, 5], rng: &rng), b = Tensor.randn([5, 9], rng: &rng)
        let c = a.matmul(b)
        for i in 0..<7 { for j in 0..<9 {
            var s: Float = 0
            for k in 0..<5 { s += a[i, k] * b[k, j] }
            #expect(abs(c[i, j] - s) < 1e-5)
        } }
    }

    @Test func largeParallelGemmEqualsSerialSplit() {
        // Big enough to be split over threads by rows and by columns.
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
            let at = Tensor(shape: [m, k], data: a).transposedLast2().data
            let bt = Tensor(shape: [k, n], data: b).transposedLast2().data
            sgemm(transA: true, transB: true, m: m, n: n, k: k, a: at, lda: m, b: bt, ldb: k, c: &c3, ldc: n)
            var worst: Float = 0
            for i in c1.indices { worst = max(worst, abs(c1[i] - c3[i])) }
            #expect(worst < 1e-3)
        }
    }

    @Test func batchedMatmulAndShapes() {
        var rng = RNG(seed: 3)
        let a = Tensor.randn([3, 4, 2], rng: &rng), b = Tensor.randn([3, 2, 5], rng: &rng)
        let c = Tensor.batchedMatmul(a, b)
        #expect(c.shape == [3, 4, 5])
        for i in 0..<3 {
            let ci = a.slice(i..<(i + 1)).reshaped([4, 2]).matmul(b.slice(i..<(i + 1)).reshaped([2, 5]))
            #expect(ci.data == c.slice(i..<(i + 1)).data)
        }
        let t = a.transposedLast2()
        #expect(t.shape == [3, 2, 4] && t[1, 1, 3] == a[1, 3, 1])
        #expect(a.reshaped([-1, 2]).shape == [12, 2])
        #expect(Tensor.concat([a, a]).shape == [6, 4, 2])
        #expect(a.sumLast().shape == [3, 4])
        #expect(abs(a.sumLast()[2, 1] - (a[2, 1, 0] + a[2, 1, 1])) < 1e-6)
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
