import Testing
import Foundation
import Tensor
import Analysis

@Suite struct FeaturesTests {
    @Test func jacobiEigenOfAKnownMatrix() {
        // [[2, 1], [1, 2]] has eigenvalues 1 and 3
        let (w, v) = jacobiEigen([2, 1, 1, 2], 2)
        #expect(Set(w.map { ($0 * 1e6).rounded() / 1e6 }) == [1, 3])
        // A v = w v for each column
        for k in 0..<2 {
            let x = v[0 * 2 + k], y = v[1 * 2 + k]
            #expect(abs(2 * x + y - w[k] * x) < 1e-9 && abs(x + 2 * y - w[k] * y) < 1e-9)
        }
    }

    @Test func frechetDistanceOfGaussians() {
        var rng = RNG(seed: 1)
        let a = (0..<400).map { _ in (0..<3).map { _ in Double(rng.normal()) } }
        let b = (0..<400).map { _ in (0..<3).map { _ in Double(rng.normal()) } }
        let shifted = b.map { $0.map { $0 + 2 } }
        let scaled = b.map { $0.map { $0 * 3 } }
        #expect(frechetDistance(a, a) < 1e-6)
        #expect(frechetDistance(a, b) < 0.2)
        // mean shift of 2 in 3 dims: ||dmu||^2 = 12; scale 3: 3 * (1 + 9 - 2*3) = 12
        #expect(abs(frechetDistance(a, shifted) - 12) < 1.5)
        #expect(abs(frechetDistance(a, scaled) - 12) < 2.0)
    }

    /// The compact features: the 2x2 pooled image is the mean of the 4x4 cells it covers, then
    /// the 9 contrast and edge values unchanged.
    @Test func compactFeaturesPoolTheCells() {
        let f = (0..<57).map(Double.init)
        let c = ImageFeatures.compact(f)
        #expect(c.count == ImageFeatures.compactDimension)
        // block (0, 0), channel 1: cells (0,0), (0,1), (1,0), (1,1) -> indices 1, 4, 13, 16
        #expect(c[1] == Double(1 + 4 + 13 + 16) / 4)
        // block (1, 1), channel 2: cells (2,2), (2,3), (3,2), (3,3) -> 32, 35, 44, 47
        #expect(c[11] == Double(32 + 35 + 44 + 47) / 4)
        #expect(Array(c[12...]) == Array(f[48...]))
    }

    @Test func featuresSeeLayoutColourAndTexture() {
        let flat = [Float](repeating: 0.5, count: 32 * 32 * 3)
        var rng = RNG(seed: 2)
        let noisy = flat.map { $0 + rng.normal() * 0.3 }
        let f = ImageFeatures.extract(flat, size: 32), g = ImageFeatures.extract(noisy, size: 32)
        #expect(f.count == ImageFeatures.dimension)
        #expect(abs(f[0] - 0.5) < 1e-6 && f[48] < 1e-6 && f[51] < 1e-6)
        #expect(g[48] > 0.2 && g[51] > 0.2 && g[54] > 0.2)
    }
}
