import Testing
import Foundation
import Tensor
import Analysis

@Suite struct GoodhartTests {
    @Test func bestOfNSelectsTheProxysFavouriteAndHasTheAnalyticKL() {
        #expect(BestOfN.kl(n: 1) == 0)
        #expect(abs(BestOfN.kl(n: 2) - (log(2) - 0.5)) < 1e-12)
        #expect(abs(BestOfN.kl(n: 64) - (log(64) - 63.0 / 64)) < 1e-12)
        #expect(BestOfN.sizes(maxN: 8) == [1, 2, 4, 8])
        #expect(BestOfN.sizes(maxN: 6) == [1, 2, 4, 6])
        let proxy: [Float] = [0.1, 0.9, 0.5, 0.2, 0.7, 0.7, 0.0, 0.3]
        #expect(BestOfN.selections(proxy: proxy, n: 1) == Array(0..<8))
        #expect(BestOfN.selections(proxy: proxy, n: 2) == [1, 2, 4, 7])      // a tie goes to the first
        #expect(BestOfN.selections(proxy: proxy, n: 4) == [1, 4])
        #expect(BestOfN.selections(proxy: proxy, n: 8) == [1])
        let gold: [Float] = [1, 0, 1, 1, 0.5, 1, 1, 1]
        let rows = BestOfN.rows(proxy: [proxy], gold: ["g": [gold]], maxN: 8)
        #expect(rows.map(\.n) == [1, 2, 4, 8])
        #expect(abs(rows[0].gold["g"]! - 6.5 / 8) < 1e-9)
        #expect(abs(rows[1].gold["g"]! - (0 + 1 + 0.5 + 1) / 4) < 1e-9)
        #expect(abs(rows[3].gold["g"]! - 0) < 1e-9)
        #expect(abs(rows[3].proxy - 0.9) < 1e-6)
    }

    @Test func gaoFormsAreRecoveredFromExactPoints() throws {
        let ds = [0.2, 0.5, 1, 1.5, 2, 3]
        for form in GoodhartForm.allCases {
            let pts = ds.map { (d: $0, gain: form.value($0, alpha: 0.4, beta: 0.15)) }
            let f = try #require(form.fit(pts))
            #expect(abs(f.alpha - 0.4) < 1e-9 && abs(f.beta - 0.15) < 1e-9)
            let groups = [Array(pts.prefix(3)), Array(pts.suffix(3)), pts]
            let w = try #require(form.fitWithIntervals(groups, resamples: 50))
            #expect(w.alphaCI.0 <= 0.4 + 1e-9 && w.alphaCI.1 >= 0.4 - 1e-9)
        }
        #expect(GoodhartForm.rl.fit([(1, 0.1)]) == nil)
    }
}
