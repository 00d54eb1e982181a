import Foundation
import Tensor
import Imaging
import Shapes
import Model
import Flow
import Dataset
import Analysis
import Training

// Helpers the test targets share: tiny models and runs, the command-line tool, test folders.

/// Central differences (step +-h) of `loss` at `perEntry` values of every entry of `layout` in
/// `params` (indices k * 7919 mod the entry's size) against the `analytic` gradient: one line for
/// each value whose error, relative to max(1, |numeric|), reaches `tolerance` (none: they agree).
public func gradientMismatches(params: FloatBuffer, layout: ParamLayout, analytic: FloatBuffer, perEntry: Int,
                               h: Double = 1e-2, tolerance: Float = 2e-2, loss: () -> Double) -> [String] {
    var out: [String] = []
    for e in layout.entries {
        for k in 0..<min(e.count, perEntry) {
            let i = e.offset + (k * 7919) % e.count
            let orig = params[i]
            params[i] = orig + Float(h); let lp = loss()
            params[i] = orig - Float(h); let lm = loss()
            params[i] = orig
            let numeric = Float((lp - lm) / (2 * h))
            if !(abs(numeric - analytic[i]) / max(1, abs(numeric)) < tolerance) { out.append("\(e.name): \(analytic[i]) vs \(numeric)") }
        }
    }
    return out
}

/// A tiny model with random weights everywhere (so v depends on everything).
public func randomTinyModel(seed: UInt64, scale: Float = 0.1) throws -> DiT {
    let m = try DiT(config: .tiny(vocabSize: Tokenizer.vocabularySize), seed: seed)
    var rng = RNG(seed: seed &+ 1000)
    for i in 0..<m.params.count { m.params[i] = rng.normal() * scale }
    return m
}

public func tinyRollout(_ m: DiT, batch B: Int, config: SDEConfig, seed: UInt64) throws -> Rollout {
    var rng = RNG(seed: seed)
    let noise = rng.normals(B * m.config.pixelsPerImage)
    let prompts = ["a red circle on a blue background", "two green squares on a black background"]
    let tokens = try (0..<B).flatMap { try Tokenizer.encode(prompts[$0 % 2]) }
    let ws = try m.makeWorkspace(batch: B, training: false)
    return SDESampler(config: config).rollout(model: m, ws: ws, noise: noise, tokens: tokens, rng: &rng)
}


/// A temporary folder with a random tiny base model and small prompt lists.
public struct TinySetup {
    public let dir: URL
    public let model: URL, prompts: URL, evalPrompts: URL

    public init(seed: UInt64 = 5, at folder: URL? = nil) throws {
        dir = folder ?? FileManager.default.temporaryDirectory.appendingPathComponent("ft-rl-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let m = try randomTinyModel(seed: seed, scale: 0.05)
        model = dir.appendingPathComponent("tiny.safetensors")
        try Checkpoint.save(m, to: model)
        prompts = dir.appendingPathComponent("train.txt")
        try "a red circle on a blue background\na green square on a black background\nthree yellow triangles on a gray background\na pink circle above a cyan square on a white background\n"
            .write(to: prompts, atomically: true, encoding: .utf8)
        evalPrompts = dir.appendingPathComponent("eval.txt")
        try "a blue triangle on a red background\ntwo white circles on a purple background\n".write(to: evalPrompts, atomically: true, encoding: .utf8)
    }

    public func config(_ algo: Algorithm, steps: Int) -> FinetuneConfig {
        var c = FinetuneConfig()
        c.algo = algo; c.model = model.path; c.prompts = prompts.path; c.evalPrompts = evalPrompts.path
        c.reward = "brightness"; c.steps = steps; c.promptsPerIteration = 2; c.groupSize = 4
        c.sde = SDEConfig(steps: 4); c.seed = 7; c.evalEvery = 0; c.checkpointEvery = 5
        c.evalPerPrompt = 2; c.evalSteps = 4
        return c
    }

    /// A run of `c` from the step-0 evaluation to its last iteration, in the folder `name`.
    public func uninterruptedRun(_ c: FinetuneConfig, _ name: String) throws -> Finetuner {
        let run = try Finetuner(config: c, runDir: dir.appendingPathComponent(name))
        try run.evaluateBase()
        while run.iteration < c.steps { try run.step() }
        return run
    }

    public func cleanUp() { try? FileManager.default.removeItem(at: dir) }
}

public func metricLines(_ url: URL) throws -> [[String: Any]] {
    try String(contentsOf: url, encoding: .utf8).split(separator: "\n").map {
        try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
    }
}

/// Long tests (tens of RL iterations) run when FLOWTUNE_SLOW_TESTS=1 (CI sets it).
public let slowTestsEnabled = ProcessInfo.processInfo.environment["FLOWTUNE_SLOW_TESTS"] == "1"


/// The real command-line tool, built beside this test bundle by `swift build --build-tests`.
public let cliBinary: URL? = {
    let url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    var dir = url.deletingLastPathComponent()
    // the test runner is .build/<config>/flowtunePackageTests.xctest (a file on Linux)
    for _ in 0..<3 {
        let candidate = dir.appendingPathComponent("flowtune")
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    return nil
}()


/// The command-line tools the bad-input corpus runs: the debug build beside this test bundle and
/// the release build (scripts/test.sh builds both, `swift build -c release` first). The release
/// one is where a missing check would read or write out of bounds instead of trapping.
public let cliBinaries: [URL] = {
    guard let debug = cliBinary else { return [] }
    // .build/<triple>/debug/flowtune -> .build/<triple>/release/flowtune
    let release = debug.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("release/flowtune")
    return FileManager.default.isExecutableFile(atPath: release.path) ? [debug, release] : [debug]
}()


/// A tiny model pretrained a few steps on the test folder, and its files.
public struct FolderModel {
    public let folder: TestFolder
    public let dir: URL
    public let model: URL
    public let config: PretrainConfig

    public init(steps: Int = 4) throws {
        folder = try TestFolder()
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("flowtune-fm-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var c = PretrainConfig()
        c.model = "tiny"; c.steps = steps; c.batch = 4; c.warmup = 2; c.seed = 3
        c.data = folder.url.path
        c.heldOut = 0.25; c.flip = true
        config = c
        let trainer = try Pretrainer(config: c, excluding: [], folder: try ImageFolder(path: folder.url.path, size: 16))
        for _ in 0..<steps { trainer.trainStep() }
        model = dir.appendingPathComponent("m.safetensors")
        try trainer.save(to: model)
    }
    public func remove() { folder.remove(); try? FileManager.default.removeItem(at: dir) }

    public func finetuneConfig(steps: Int) -> FinetuneConfig {
        var c = FinetuneConfig()
        c.algo = .grpoGuard; c.model = model.path; c.reward = "saturation"; c.steps = steps
        c.promptsPerIteration = 2; c.groupSize = 2; c.sde = SDEConfig(steps: 4); c.seed = 7
        c.evalEvery = 2; c.checkpointEvery = 2; c.evalPerPrompt = 2; c.evalSteps = 4
        return c
    }
}


public struct TestFolder {
    public let url: URL
    public init(bad: Bool = false) throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("flowtune-folder-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url.appendingPathComponent("sub"), withIntermediateDirectories: true)
        // a 37x23 RGB gradient (PNG), caption from a .txt
        try write("red-wide.png", try Self.gradient(width: 37, height: 23).pngData(), caption: "A red, wide thing!")
        // a 20x20 grey PNG, written by hand as 8-bit greyscale
        try write("sub/grey.png", Self.greyPNG(side: 20, value: 90), caption: "grey square")
        // a 16x16 RGBA PNG: a half-transparent blue over the background
        try write("blue-alpha.png", Self.rgbaPNG(side: 16, rgba: (0, 0, 255, 128)), caption: nil)
        // a 41x41 JPEG, captioned by metadata.jsonl
        try write("photo.JPG", try Self.gradient(width: 41, height: 41).jpegData(quality: 90), caption: nil)
        let meta = #"{"file_name": "blue-alpha.png", "text": "blue glass"}"# + "\n" + #"{"file_name": "./photo.JPG", "caption": "a photo"}"# + "\n"
        try Data(meta.utf8).write(to: url.appendingPathComponent("metadata.jsonl"))
        if bad {
            try write("broken.png", [0x89, 0x50, 0x4E, 0x47, 1, 2, 3, 4, 5], caption: "broken")
            try write("silent.png", try Self.gradient(width: 8, height: 8).pngData(), caption: nil)
            try write("empty.png", try Self.gradient(width: 8, height: 8).pngData(), caption: " ,,, \n")
        }
    }
    public func write(_ name: String, _ bytes: [UInt8], caption: String?) throws {
        try Data(bytes).write(to: url.appendingPathComponent(name))
        if let caption {
            try Data(caption.utf8).write(to: url.appendingPathComponent((name as NSString).deletingPathExtension + ".txt"))
        }
    }
    public func remove() { try? FileManager.default.removeItem(at: url) }

    public static func gradient(width: Int, height: Int) -> RGBImage {
        var img = RGBImage(width: width, height: height)
        for y in 0..<height { for x in 0..<width { img.setPixel(x, y, (UInt8(x * 255 / max(width - 1, 1)), UInt8(y * 255 / max(height - 1, 1)), 40)) } }
        return img
    }

    /// A PNG by hand: IHDR, one IDAT of stored (uncompressed) zlib blocks, IEND.
    public static func png(width: Int, height: Int, colorType: UInt8, rows: [[UInt8]], palette: [UInt8]? = nil) -> [UInt8] {
        func be(_ v: Int) -> [UInt8] { [UInt8(v >> 24 & 255), UInt8(v >> 16 & 255), UInt8(v >> 8 & 255), UInt8(v & 255)] }
        func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
            let body = Array(type.utf8) + data
            return be(data.count) + body + be(Int(crc32(body)))
        }
        let raw: [UInt8] = rows.flatMap { [UInt8(0)] + $0 }
        var a: UInt32 = 1, b: UInt32 = 0
        for v in raw { a = (a + UInt32(v)) % 65521; b = (b + a) % 65521 }
        var z: [UInt8] = [0x78, 0x01]
        var i = 0
        repeat {
            let n = min(65535, raw.count - i)
            z += [i + n == raw.count ? 1 : 0, UInt8(n & 255), UInt8(n >> 8), UInt8(~n & 255), UInt8((~n >> 8) & 255)]
            z += raw[i..<(i + n)]
            i += n
        } while i < raw.count
        z += be(Int(b << 16 | a))
        return [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + chunk("IHDR", be(width) + be(height) + [8, colorType, 0, 0, 0])
            + (palette.map { chunk("PLTE", $0) } ?? []) + chunk("IDAT", z) + chunk("IEND", [])
    }
    public static func greyPNG(side: Int, value: UInt8) -> [UInt8] {
        png(width: side, height: side, colorType: 0, rows: Array(repeating: Array(repeating: value, count: side), count: side))
    }
    public static func rgbaPNG(side: Int, rgba: (UInt8, UInt8, UInt8, UInt8)) -> [UInt8] {
        png(width: side, height: side, colorType: 6, rows: Array(repeating: Array((0..<side).flatMap { _ in [rgba.0, rgba.1, rgba.2, rgba.3] }), count: side))
    }
}


/// A Python interpreter that can import TensorBoard's own reader: $FLOWTUNE_PYTHON, the
/// virtual environment scripts/setup.sh makes (.build/pyenv), or python3 on the PATH.
public let pythonWithTensorBoard: String? = {
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


    /// A tiny model with every parameter random (adaLN-Zero would otherwise zero most paths).
public func randomModel(seed: UInt64 = 1, convHead: Bool = false) throws -> DiT {
    var c = ModelConfig.tiny(vocabSize: Tokenizer.vocabularySize)
    if convHead { c.name = "tinyc"; c.headChannels = 5 }
    let m = try DiT(config: c, seed: seed)
    var rng = RNG(seed: seed + 100)
    for i in 0..<m.params.count { m.params[i] = rng.normal() * 0.15 }
    return m
}

