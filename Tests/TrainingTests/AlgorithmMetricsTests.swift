import Testing
import TestSupport
import Foundation
import Tensor
import Model
import Analysis
import Training

/// An algorithm of the test's own: GRPO, plus one metric of its own. Nothing else knows it.
final class GRPOWithAMetric: FinetuneAlgorithm {
    static var diagnostics: DiagnosticsChart { ClippedRatioAlgorithm.diagnostics }
    let inner: ClippedRatioAlgorithm
    var calls = 0
    init(config: FinetuneConfig, model: DiT) throws {
        inner = try ClippedRatioAlgorithm(kind: .grpo, objective: GRPOObjective(clipRange: config.effectiveClipRange), config: config, model: model)
    }
    var kind: Algorithm { inner.kind }
    var deterministicRollout: Bool { inner.deterministicRollout }
    var rolloutWorkspaces: [Workspace] { inner.rolloutWorkspaces }
    func train(_ batch: RolloutBatch, _ state: TrainingState) throws -> AlgorithmMetrics {
        var m = try inner.train(batch, state)
        calls += 1
        m["tests_own_metric"] = Double(calls) * 0.25
        return m
    }
    func save(into f: inout SafeTensorsFile) {}
    func restore(from f: SafeTensorsFile, source: String) throws {}
}

@Suite struct AlgorithmMetricsTests {
    /// A metric added in one algorithm's `train` alone reaches metrics.jsonl (after the loop's
    /// fields, in the algorithm's order), TensorBoard (train/NAME) and the report's table.
    @Test func anAlgorithmsOwnMetricReachesEveryReader() throws {
        let setup = try TinySetup()
        defer { setup.cleanUp() }
        var c = setup.config(.grpo, steps: 2)
        c.evalEvery = 1
        let dir = setup.dir.appendingPathComponent("run")
        let run = try Finetuner(config: c, runDir: dir, algorithm: { try GRPOWithAMetric(config: $0, model: $1) })
        try run.evaluateBase()
        while run.iteration < c.steps { try run.step() }
        let lines = try metricLines(run.metricsURL)
        #expect(lines.map { $0["tests_own_metric"] as? Double } == [nil, 0.25, 0.5])
        let text = try String(contentsOf: run.metricsURL, encoding: .utf8).split(separator: "\n")[1]
        #expect(text.contains("\"kl_ref\": 0, \"tests_own_metric\": 0.25, \"timesteps\": ["), "\(text.prefix(400))")
        let events = try Data(contentsOf: try #require(TensorBoardLog.eventFiles(in: dir).first))
        #expect(events.range(of: Data("train/tests_own_metric".utf8)) != nil)
        let page = try String(contentsOf: try Report.write(runDir: dir, description: try RunDescription(c)), encoding: .utf8)
        #expect(page.contains("<td>tests_own_metric</td><td>0.2500</td><td>0.3750</td><td>0.5000</td>"))
    }
}
