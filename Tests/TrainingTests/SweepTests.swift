import Testing
import TestSupport
import Foundation
import Analysis
import Tensor
import Training

/// A sweep axis by its name (the test's names exist).
func axis(_ name: String) -> SweepAxis { try! SweepAxis(name) }

@Suite struct SweepTests {
    @Test func gridExpandsEveryCombinationWithSeedsLast() throws {
        var base = FinetuneConfig()
        base.seed = 10
        let points = try sweepGrid(base: base, vary: [(axis("algo"), ["grpo", "grpo-guard"]), (axis("lr"), ["1e-4", "3e-4"])], seeds: 2)
        #expect(points.count == 8)
        #expect(points.map(\.name).prefix(3) == ["algo=grpo_lr=1e-4_seed=10", "algo=grpo_lr=1e-4_seed=11", "algo=grpo_lr=3e-4_seed=10"])
        #expect(points[2].config.lr == 3e-4 && points[2].config.algo == .grpo && points[2].config.seed == 10)
        #expect(points[7].config.algo == .grpoGuard && points[7].config.seed == 11)
        #expect(points[0].configurationKey == "algo=grpo, lr=1e-4" && points[1].configurationKey == points[0].configurationKey)
        let more = try sweepGrid(base: base, vary: [(axis("noise-level"), ["0.5"]), (axis("group-size"), ["4"]), (axis("acflow-alpha"), ["0.1"]), (axis("sde-window"), ["3"])], seeds: 1)
        #expect(more.count == 1 && more[0].config.sde.noiseLevel == 0.5 && more[0].config.groupSize == 4 && more[0].config.acflow.alpha == 0.1)
        #expect(more[0].config.sde.stochasticSteps == 3)
        let targets = try sweepGrid(base: base, vary: [(axis("acflow-target"), ["transition", "nft"])], seeds: 1)
        #expect(targets.map(\.config.acflow.target) == [.transition, .nft] && targets[1].name == "acflow-target=nft_seed=10")
    }

    @Test func badGridsAreErrorsNamingTheSetting() {
        let base = FinetuneConfig()
        func message(_ vary: [(SweepAxis, [String])], seeds: Int = 1) -> String {
            do { _ = try sweepGrid(base: base, vary: vary, seeds: seeds); return "" } catch { return "\(error)" }
        }
        #expect(message([(axis("lr"), ["fast"])]).contains("--vary lr: --lr 'fast': expected a number"))
        #expect(message([(axis("algo"), ["ppo"])]).contains("--algo 'ppo': expected one of grpo, grpo-guard, acflow"))
        #expect(message([(axis("lr"), ["1e-4"]), (axis("lr"), ["3e-4"])]).contains("--vary lr is given twice"))
        #expect(message([(axis("lr"), ["1e-4", "1e-4"])]).contains("needs distinct values"))
        #expect(message([(axis("group-size"), ["1"])]).contains("group-size=1") && message([(axis("group-size"), ["1"])]).contains("--group-size"))
        #expect(message([], seeds: 0).contains("--seeds must be at least 1"))
        #expect(message([(axis("sde-window"), ["11"])]).contains("--sde-window must be at most 10"))
        #expect(message([(axis("acflow-target"), ["best"])]).contains("'best': expected one of visited, fresh, transition, nft"))
        #expect(throws: InvalidOption.self) { try SweepAxis("seed") }         // --seeds gives the seeds
        #expect(throws: InvalidOption.self) { try SweepAxis("learning-rate") }
    }

}
