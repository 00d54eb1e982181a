import Testing
import Foundation
import Tensor
import Analysis
import Training
import TestSupport

/// What flowtune writes for TensorBoard, read by TensorBoard's own Python reader.
@Suite struct TensorBoardReaderTests {
    /// A run killed after an unsaved iteration and resumed: TensorBoard's own reader
    /// (EventAccumulator) finds every training and eval scalar once per step with the values of
    /// metrics.jsonl (the paired errors of the evaluations' changes too), the per-SDE-step ratio
    /// statistics, and the eval grids as images of the grids' size; the event file of the first
    /// process is gone.
    @Test(.enabled(if: pythonWithTensorBoard != nil,
                   "Python's tensorboard is not installed (bash scripts/setup.sh makes .build/pyenv with it; or set FLOWTUNE_PYTHON)"))
    func tensorBoardsReaderSeesEveryScalarAndGridOnceAfterAResume() throws {
        let setup = try TinySetup()
        defer { setup.cleanUp() }
        var c = setup.config(.grpoGuard, steps: 4)
        c.checkpointEvery = 2; c.evalEvery = 1
        let dir = setup.dir.appendingPathComponent("run")
        let a = try Finetuner(config: c, runDir: dir)
        try a.evaluateBase()
        while a.iteration < 3 { try a.step() }         // iteration 3 is not checkpointed
        let first = TensorBoardLog.eventFiles(in: dir)
        #expect(first.count == 1)
        let b = try Finetuner(config: c, runDir: dir, resume: true)
        #expect(b.iteration == 2)
        while b.iteration < 4 { try b.step() }
        let files = TensorBoardLog.eventFiles(in: dir)
        #expect(files.count == 1 && files != first)

        let script = """
        import json, sys
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
        ea = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0, "images": 0})
        ea.Reload()
        out = {"scalars": {t: [[e.step, e.value] for e in ea.Scalars(t)] for t in ea.Tags()["scalars"]},
               "images": [[e.step, e.width, e.height, len(e.encoded_image_string)] for e in ea.Images("eval/grid")]}
        print(json.dumps(out))
        """
        let p = Process()
        let python = pythonWithTensorBoard!
        p.executableURL = URL(fileURLWithPath: python.hasPrefix("/") ? python : "/usr/bin/env")
        p.arguments = (python.hasPrefix("/") ? [] : [python]) + ["-c", script, dir.path]
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        try #require(p.terminationStatus == 0)
        let read = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        let scalars = read["scalars"] as! [String: [[Double]]]
        let lines = try metricLines(b.metricsURL)
        #expect(lines.map { $0["step"] as! Int } == [0, 1, 2, 3, 4])
        func close(_ x: Double, _ y: Double) -> Bool { abs(x - y) <= 1e-6 * max(1, abs(y)) }
        // training scalars at steps 1...4 once each, with metrics.jsonl's values
        let reward = try #require(scalars["train/reward_mean"])
        #expect(reward.map { Int($0[0]) } == [1, 2, 3, 4])
        for (pt, line) in zip(reward, lines.dropFirst()) { #expect(close(pt[1], line["reward_mean"] as! Double)) }
        #expect(scalars["train/rewards/brightness"]?.count == 4)
        #expect(scalars["train/loss"]?.count == 4)
        // eval scalars at steps 0...4
        let proxy = try #require(scalars["eval/proxy"])
        #expect(proxy.map { Int($0[0]) } == [0, 1, 2, 3, 4])
        for (pt, line) in zip(proxy, lines) { #expect(close(pt[1], (line["eval"] as! [String: Any])["proxy"] as! Double)) }
        #expect(scalars["eval/shape_eval"]?.count == 5)
        // the paired standard error of each change since step 0, from step 1 on (a resumed
        // process's too)
        let change = try #require(scalars["eval_change_se/shape_eval"])
        #expect(change.map { Int($0[0]) } == [1, 2, 3, 4])
        for (pt, line) in zip(change, lines.dropFirst()) {
            #expect(close(pt[1], ((line["eval"] as! [String: Any])["change_se"] as! [String: Any])["shape_eval"] as! Double))
        }
        // ratio statistics of every trained SDE step (SDE steps 4: the last is deterministic, 3 trained)
        let ts = (lines[1]["timesteps"] as! [[String: Any]])
        for t in ts {
            let k = String(format: "k%02d", t["k"] as! Int)
            let series = try #require(scalars["timesteps/ratio_mean/\(k)"])
            #expect(series.map { Int($0[0]) } == [1, 2, 3, 4])
            #expect(close(series[0][1], t["ratio_mean"] as! Double))
        }
        // one grid image per evaluation, the size of the grid PNG
        let images = read["images"] as! [[Int]]
        #expect(images.map { $0[0] } == [0, 1, 2, 3, 4])
        let grid = try [UInt8](Data(contentsOf: dir.appendingPathComponent("grids/step-00004.png")))
        let size = try #require(TensorBoardEvents.pngSize(grid))
        #expect(images.last! == [4, size.width, size.height, grid.count])
    }
}
