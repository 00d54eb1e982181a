import Testing
import Foundation
import Tensor
import Analysis

@Suite struct StatisticsTests {
    /// The gold metric where the proxy gain first reaches a value: linear between the two
    /// evaluations around it; the first crossing counts; a run that never reaches it has none.
    @Test func goldIsInterpolatedAtEqualProxyGain() throws {
        let t: [(gain: Double, gold: Double)] = [(0, 0), (0.1, -0.2), (0.3, -0.6), (0.2, -0.9), (0.5, -1.0)]
        #expect(abs(try #require(goldAtProxyGain(t, gain: 0.05)) - -0.1) < 1e-12)
        #expect(abs(try #require(goldAtProxyGain(t, gain: 0.2)) - -0.4) < 1e-12)       // first crossing, not the later 0.2
        let at04 = try #require(goldAtProxyGain(t, gain: 0.4)), want: Double = -0.9 - 0.2 / 3
        #expect(abs(at04 - want) < 1e-12)
        #expect(goldAtProxyGain(t, gain: 0.6) == nil)
        #expect(goldAtProxyGain([], gain: 0.1) == nil)
        #expect(goldAtProxyGain([(0.2, 1)], gain: 0.1) == 1)
    }

    /// The bootstrap interval of a mean: the same data give the same interval; it holds the
    /// mean, is empty for constant data, and narrows as the sample grows (1/sqrt(n)).
    @Test func bootstrapIntervalOfTheMean() throws {
        var rng = RNG(seed: 3)
        let small = (0..<8).map { _ in Double(rng.normal()) }, large = (0..<128).map { _ in Double(rng.normal()) }
        let a = try #require(bootstrapMeanInterval(small)), b = try #require(bootstrapMeanInterval(small))
        #expect(a.low == b.low && a.high == b.high)
        #expect(a.low < a.mean && a.mean < a.high)
        let wide = a.high - a.low, narrow = try #require(bootstrapMeanInterval(large)).high - bootstrapMeanInterval(large)!.low
        #expect(narrow < wide / 2)
        // ~ 2 x 1.96 / sqrt(128) = 0.35 for unit variance
        #expect(narrow > 0.25 && narrow < 0.45)
        let constant = try #require(bootstrapMeanInterval([2, 2, 2]))
        #expect(constant.low == 2 && constant.high == 2)
        #expect(bootstrapMeanInterval([]) == nil)
    }
}
