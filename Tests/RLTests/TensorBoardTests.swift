import Testing
import Foundation
import Tensor
import Training
import Imaging

/// A Python interpreter that can import TensorBoard's own reader: $FLOWTUNE_PYTHON, the
/// virtual environment scripts/setup.sh makes (.build/pyenv), or python3 on the PATH.
let pythonWithTensorBoard: String? = {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    var candidates = [root.appendingPathComponent(".build/pyenv/bin/python").path, "/usr/bin/env"]
    if let p = ProcessInfo.processInfo.environment["FLOWTUNE_PYTHON"] { candidates.insert(p, at: 0) }
    for exe in candidates where FileManager.default.isExecutableFile(atPath: exe) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = (exe == "/usr/bin/env" ? ["python3"] : []) + ["-c", "import tensorboard.backend.event_processing.event_accumulator"]
        p.standardOutput = FileHandle.nullDevice; p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { continue }
        p.waitUntilExit()
        if p.terminationStatus == 0 { return exe == "/usr/bin/env" ? "python3" : exe }
    }
    return nil
}()

@Suite struct TensorBoardTests {
    /// The bytes of two records written by TensorBoard's own Python writer (RecordWriter and
    /// event_pb2): the file-version event at wall time 1.5, then a summary at step 300 with the
    /// scalar 0.25 and a 3x2 image whose encoded bytes are "\x89PNG".
    @Test func eventRecordsMatchTensorBoardsOwnWriterByteForByte() {
        let expected = "1800000000000000a37f4b2209000000000000f83f1a0d627261696e2e4576656e743a322a28646c"
            + "4300000000000000b18525a00900001040fc54d94110ac022a350a180a11747261696e2f7265776172645f6d65616e15"
            + "0000803e0a190a096576616c2f67726964220c080210031803220489504e472da5fd9f"
        let bytes = TensorBoardEvents.fileVersion(wallTime: 1.5)
            + TensorBoardEvents.summary(step: 300, wallTime: 1_700_000_000.25,
                                        [.scalar("train/reward_mean", 0.25), .png("eval/grid", [0x89, 0x50, 0x4E, 0x47], width: 3, height: 2)])
        #expect(bytes.map { String(format: "%02x", $0) }.joined() == expected)
    }

    @Test func pngSizeReadsTheHeaderAndRefusesOtherBytes() throws {
        let png = try RGBImage(width: 7, height: 3, fill: (10, 20, 30)).pngData()
        #expect(TensorBoardEvents.pngSize(png)! == (7, 3))
        #expect(TensorBoardEvents.pngSize(Array(png.prefix(20))) == nil)
        #expect(TensorBoardEvents.pngSize(Array("not a png at all, but long enough".utf8)) == nil)
    }

    /// A run killed after an unsaved iteration and resumed: TensorBoard's own reader
    /// (EventAccumulator) finds every training and eval scalar once per step with the values of
    /// metrics.jsonl, the per-SDE-step ratio statistics, and the eval grids as images of the
    /// grids' size; the event file of the first process is gone.
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

