import Testing
import Foundation
import Tensor
import Analysis

@Suite struct MetricsRecordTests {
    /// A line written by the loop reads back as the same record (values with 6 digits or fewer),
    /// the algorithm's metrics in the order it listed them, its flags as flags.
    @Test func metricsRecordsRoundTrip() throws {
        var r = MetricsRecord(step: 3, algo: .grpoGuard)
        r.rewardMean = 0.25; r.rewards = ["shape-eval": 0.5, "brightness": 0.125]; r.seconds = 1.5
        r.algorithm["loss"] = -0.0625
        r.algorithm.set("critic_in_use", true)
        r.algorithm["a_metric_of_its_own"] = 2
        r.algorithm.steps = [["k": 0, "t": 1, "ratio_mean": 1, "ratio_std": 0.001, "clip_high": 0.25]]
        r.eval = EvalRecord(proxy: 0.5, scores: ["brightness": 0.5], shapeEval: 0.75, shapeEvalByTask: ["single": 0.5, "position": nil],
                            fd: 12.5, diversity: 1.25, w2: 0.0078125, grid: "grids/step-00003.png")
        r.eval?.se = ["proxy": 0.125, "shape_eval": 0.0625, "fd": 2.5]
        r.eval?.fdFloor = 3.25
        r.eval?.klBase = 6.5
        let text = r.json(rewardNames: ["shape-eval", "brightness"]).text
        #expect(text.hasPrefix("{\"step\": 3, \"algo\": \"grpo-guard\", \"reward_mean\": 0.25, \"rewards\": {\"shape-eval\": 0.5, \"brightness\": 0.125}"))
        #expect(text.contains("\"loss\": -0.0625, \"critic_in_use\": true, \"a_metric_of_its_own\": 2, \"timesteps\": [{\"k\": 0, \"t\": 1,"))
        let back = try MetricsRecord(json: try JSONValue.parse(text))
        #expect(back == r)
        #expect(back.algorithm.scalars.names == ["loss", "critic_in_use", "a_metric_of_its_own"])
        #expect(r.scalars.map(\.0).contains("rewards/brightness") && r.scalars.first { $0.0 == "critic_in_use" }?.1 == 1)
        #expect(throws: AnalysisError.self) { try MetricsRecord(json: try JSONValue.parse("{\"step\": 1, \"algo\": \"ppo\"}")) }
    }
}
