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

    /// A run whose first evaluation after the start is already far from the base model leaves the
    /// curve's start unmeasured; one evaluated early does not.
    @Test func anUnmeasuredStartIsFound() {
        func points(_ ds: [Double]) -> [GoodhartChart.Point] { ds.map { GoodhartChart.Point(d: $0, gold: 0.7, proxy: 0.7) } }
        #expect(GoodhartChart.unmeasuredStart(points([0, 8.1, 9.5, 11.2])) == 8.1)
        #expect(GoodhartChart.unmeasuredStart(points([0, 1, 2, 4, 8, 11])) == nil)
        #expect(GoodhartChart.unmeasuredStart(points([0, 3, 12])) == nil)       // a third of the largest: measured enough
        #expect(GoodhartChart.unmeasuredStart(points([0, 0])) == nil)
        // a group is named when none of its runs is measured near the base model
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ft-goodhart-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        var chart = GoodhartChart(gold: "shape-eval")
        for (name, kls) in [("late-1", [0.0, 64, 81, 121]), ("late-2", [0.0, 49, 100]), ("early", [0.0, 1, 16, 100])] {
            let run = dir.appendingPathComponent(name)
            try? FileManager.default.createDirectory(at: run, withIntermediateDirectories: true)
            let lines = kls.enumerated().map { i, kl in "{\"step\": \(i * 10), \"algo\": \"grpo\", \"eval\": {\"proxy\": 0.5, \"scores\": {}, \"shape_eval\": 0.7, \"fd\": 1, \"diversity\": 1, \"w2\": 0, \"grid\": \"g.png\", \"kl_base\": \(kl)}}" }
            try? (lines.joined(separator: "\n") + "\n").write(to: run.appendingPathComponent("metrics.jsonl"), atomically: true, encoding: .utf8)
            #expect(throws: Never.self) { try chart.addRun(label: name == "early" ? "early" : "late", folder: run) }
        }
        let starts = chart.unmeasuredStarts
        #expect(starts.count == 1 && starts.first?.label == "late" && starts.first?.d == 7)
    }

    @Test func summaryFindsPeakFallAndGainAtEqualDistanceAndProxy() throws {
        typealias P = GoodhartChart.Point
        let run = [P(d: 0, gold: 0.70, proxy: 0, goldSE: 0.01), P(d: 10, gold: 0.80, proxy: 0.5, goldSE: 0.01),
                   P(d: 20, gold: 0.75, proxy: 1, goldSE: 0.01)]
        var one = GoodhartChart.Group(label: "a", form: .rl); one.runs = [run]
        let s = GoodhartSummary(group: one, atD: [5, 15, 30], atProxy: [0.25])
        let se2 = 1.96 * (2 * 0.01 * 0.01).squareRoot()
        #expect(abs(s.peakGain.mean - 0.10) < 1e-12 && abs(s.peakGain.high - (0.10 + se2)) < 1e-12 && s.peakD == 10)
        #expect(abs(s.fall.mean + 0.05) < 1e-12 && abs(s.endGain.mean - 0.05) < 1e-12 && s.endD == 20 && s.endProxy == 1)
        #expect(abs(s.atD[0].gain!.mean - 0.05) < 1e-12 && abs(s.atD[1].gain!.mean - 0.075) < 1e-12)
        #expect(s.atD[2].gain == nil)                                   // the run never reaches d = 30
        #expect(abs(s.atProxy[0].gain!.mean - 0.05) < 1e-12)
        // two runs: the mean over runs, the interval from a bootstrap over them
        var two = one
        two.runs.append(run.map { P(d: $0.d, gold: $0.d == 10 ? 0.90 : $0.gold, proxy: $0.proxy, goldSE: 0.01) })
        let t = GoodhartSummary(group: two)
        #expect(abs(t.peakGain.mean - 0.15) < 1e-12 && t.peakGain.low >= 0.10 - 1e-12 && t.peakGain.high <= 0.20 + 1e-12)
        #expect(t.peakGain.low < t.peakGain.high)
        let table = GoodhartSummary.markdown([s, t], gold: "shape-eval")
        #expect(table.contains("| a (RL) | 1 | 0.700 | +0.100 [") && table.contains("not reached"))
    }

    /// Best-of-n's gain over n = 1 has a paired standard error over prompts (the same candidates
    /// at every n), and the summary takes it for the gains of a best-of-n group.
    @Test func bestOfNGainHasAPairedStandardError() throws {
        let proxy: [[Float]] = [[0.1, 0.9, 0.5, 0.2], [0.3, 0.2, 0.8, 0.1]]
        let gold: [[Float]] = [[0, 1, 0, 0], [1, 0, 0, 1]]
        let rows = BestOfN.rows(proxy: proxy, gold: ["g": gold], maxN: 4)
        // n = 4 picks candidate 1 (gold 1, mean 0.25) and candidate 2 (gold 0, mean 0.5)
        let gains = [1 - 0.25, 0 - 0.5]
        #expect(abs(rows[2].gold["g"]! - 0.5) < 1e-12)
        #expect(abs(rows[2].goldGainSE["g"]! - standardError(gains)) < 1e-12)
        #expect(rows[0].goldGainSE["g"] == 0)                              // n = 1 is the mean: no gain
        #expect(BestOfN.jsonLine(rows[2]).contains("\"gold_gain_se\""))
        typealias P = GoodhartChart.Point
        let g = GoodhartChart.Group(label: "b", form: .bestOfN, runs: [[P(d: 0, gold: 0.5, proxy: 0, goldSE: 0.1, gainSE: 0),
                                                                        P(d: 1, gold: 0.6, proxy: 1, goldSE: 0.1, gainSE: 0.02)]])
        let s = GoodhartSummary(group: g)
        #expect(abs(s.peakGain.high - (0.1 + 1.96 * 0.02)) < 1e-12)          // not sqrt(0.1^2 + 0.1^2)
    }
}
