import Testing
import Foundation
import Tensor
import Analysis
import Shapes

@Suite struct StatisticsTests {
    /// The value where x (a proxy gain, say) first reaches a level: linear between the two
    /// evaluations around it; the first crossing counts; a run that never reaches it has none.
    @Test func goldIsInterpolatedAtEqualProxyGain() throws {
        let t: [(x: Double, y: Double)] = [(0, 0), (0.1, -0.2), (0.3, -0.6), (0.2, -0.9), (0.5, -1.0)]
        #expect(abs(try #require(valueWhereFirstReached(t, level: 0.05)) - -0.1) < 1e-12)
        #expect(abs(try #require(valueWhereFirstReached(t, level: 0.2)) - -0.4) < 1e-12)       // first crossing, not the later 0.2
        let at04 = try #require(valueWhereFirstReached(t, level: 0.4)), want: Double = -0.9 - 0.2 / 3
        #expect(abs(at04 - want) < 1e-12)
        #expect(valueWhereFirstReached(t, level: 0.6) == nil)
        #expect(valueWhereFirstReached([], level: 0.1) == nil)
        #expect(valueWhereFirstReached([(0.2, 1)], level: 0.1) == 1)
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

@Suite struct CheckerTallyTests {
    /// Renderings of prompts (the checker passes them) against blank images (it fails their
    /// objects): the per-task means, the pass rates, and the paired change with its interval.
    @Test func theChangeFromBlankImagesToRenderingsIsTheirPairedDifference() throws {
        let gen = PromptGenerator(), renderer = Renderer(size: 32), checker = Checker(size: 32)
        var rng = RNG(seed: 31)
        let specs = (0..<24).map { gen.draw(task: Task.allCases[$0 % 4], rng: &rng) }
        let drawn = specs.map { s in (0..<3).map { _ in renderer.render(s, rng: &rng) } }
        let blank = specs.map { _ in (0..<3).map { _ in [Float](repeating: 0, count: 3 * 32 * 32) } }
        let good = CheckerTally(checker: checker, specs: specs, images: drawn)
        let bad = CheckerTally(checker: checker, specs: specs, images: blank)
        #expect(good.scores.images == 72 && good.prompts.count == 24)
        #expect(good.scores.overall > 0.9 && bad.scores.overall < 0.5, "\(good.scores.overall) \(bad.scores.overall)")
        #expect(bad.passRate("counting / count") == 0 && good.passRate("counting / count")! > 0.8)
        #expect(good.passRate("single / relation") == nil)
        // the overall change is the difference of the means (equal images per prompt), its
        // interval around it and clear of zero; each task's the difference of that task's means
        let d = try #require(good.change(from: bad))
        #expect(abs(d.mean - (good.scores.overall - bad.scores.overall)) < 1e-12)
        #expect(d.low <= d.mean && d.mean <= d.high && d.low > 0)
        for t in Task.allCases {
            let dt = try #require(good.change(from: bad, task: t))
            #expect(abs(dt.mean - (good.scores.mean(t)! - bad.scores.mean(t)!)) < 1e-12)
        }
        // against itself: zero, with a zero-width interval
        let same = try #require(good.change(from: good))
        #expect(same.mean == 0 && same.low == 0 && same.high == 0)
    }
}
