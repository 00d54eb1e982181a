import Testing
import TestSupport
import Foundation
import Analysis
import Tensor
import Model
import Training
import Shapes
import Imaging
import Dataset

/// One bad input: the command line (`$F` stands for the fixture folder; outputs go to the
/// current folder, a fresh one per case) and what the one error line must name.
struct BadInput: Sendable, CustomTestStringConvertible {
    let name: String
    let args: [String]
    let names: String
    var exitCode: Int32 = 1          // 64: a command line ArgumentParser rejects
    var environment: [String: String] = [:]   // added to the test's own
    var testDescription: String { name }
}

/// Inputs the corpus reads, made once: a tiny model and its corrupted variants, prompt files,
/// a finished run, a file and a folder where the CLI expects the other.
final class BadInputFixtures: @unchecked Sendable {
    static let shared = try! BadInputFixtures()
    let dir: URL
    private(set) var snapshot: [String: Data] = [:]

    init() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("ft-badinput-\(UUID().uuidString)")
        let setup = try TinySetup(at: dir)
        let encoder = JSONEncoder()
        let model = try Data(contentsOf: setup.model)
        func file(_ name: String, _ data: Data) throws { try data.write(to: dir.appendingPathComponent(name)) }
        func text(_ name: String, _ s: String) throws { try file(name, Data(s.utf8)) }

        // prompt files
        try text("empty.txt", "")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("folder"), withIntermediateDirectories: true)
        try file("binary.txt", Data((0..<1024).map { UInt8(($0 * 151 + 7) % 256) }))
        try text("unknown-word.txt", "a red flurble on a blue background\n")
        try text("seventeen-words.txt", "a red circle above a blue square and a green triangle left of a yellow star on black\n")
        try text("megabyte-line.txt", String(repeating: "circle ", count: 150_000) + "\n")
        try text("nul.txt", "a red\u{0} circle on a blue background\n")
        try text("form-feed.txt", "a red circle on a blue background\n\u{0C}\na blue circle on a fuzzy background\n")

        // checkpoints: the file's own bytes, then variants written here byte by byte (not by flowtune's writer)
        let headerLength = Int(model.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self).littleEndian })
        var header = try JSONSerialization.jsonObject(with: model.subdata(in: 8..<(8 + headerLength))) as! [String: Any]
        let payload = model.subdata(in: (8 + headerLength)..<model.count)
        func safetensors(_ header: [String: Any], _ payload: Data) throws -> Data {
            let json = try JSONSerialization.data(withJSONObject: header)
            return withUnsafeBytes(of: UInt64(json.count).littleEndian) { Data($0) } + json + payload
        }
        func withConfig(_ change: (inout [String: Any]) -> Void) throws -> Data {
            var h = header, meta = h["__metadata__"] as! [String: String]
            var cfg = try JSONSerialization.jsonObject(with: Data(meta["config"]!.utf8)) as! [String: Any]
            change(&cfg)
            meta["config"] = String(decoding: try JSONSerialization.data(withJSONObject: cfg), as: UTF8.self)
            h["__metadata__"] = meta
            return try safetensors(h, payload)
        }
        try file("truncated.safetensors", model.prefix(model.count / 2))
        var flipped = model
        flipped[model.count - 100] ^= 0x04
        try file("flipped-bit.safetensors", flipped)
        try file("header-past-end.safetensors", withUnsafeBytes(of: UInt64(model.count).littleEndian) { Data($0) } + model.dropFirst(8))
        try file("huge-header.safetensors", withUnsafeBytes(of: (UInt64.max - 4).littleEndian) { Data($0) } + model.dropFirst(8))
        try file("foreign.safetensors", try safetensors(["weight": ["dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]]], Data(count: 16)))
        try text("not-safetensors.safetensors", "hello, not a checkpoint")
        try file("other-vocabulary.safetensors", try withConfig { $0["vocabSize"] = ($0["vocabSize"] as! Int) + 1 })
        try file("other-text-length.safetensors", try withConfig { $0["textLength"] = 12 })
        try file("image-not-multiple-of-patch.safetensors", try withConfig { $0["imageSize"] = 18 })
        try file("image-too-small.safetensors", try withConfig { $0["imageSize"] = 8 })
        try file("huge-width.safetensors", try withConfig { $0["width"] = 1 << 40 })
        // a configuration of 31 GiB of weights in a file of the tiny model's few: refused before allocating
        try file("large-config.safetensors", try withConfig { $0["width"] = 4096; $0["depth"] = 12; $0["mlpRatio"] = 16; $0["heads"] = 16 })
        // metadata of fewer blocks than the file holds
        var deeper = ModelConfig.tiny(vocabSize: Tokenizer.vocabularySize)
        deeper.depth += 1
        var twoBlocks = try Checkpoint.file(config: deeper, params: try DiT(config: deeper, seed: 3).params)
        twoBlocks.metadata["config"] = try sortedJSON(ModelConfig.tiny(vocabSize: Tokenizer.vocabularySize))
        try file("fewer-blocks.safetensors", try twoBlocks.serialized())
        // non-finite and absurd weights, written by flowtune's own writer (so the CRC-32 is right)
        for (name, value) in [("nan-weight", Float.nan), ("inf-weight", Float.infinity), ("huge-weight", Float(1e30))] {
            var f = try SafeTensorsFile(data: model, source: "tiny")
            let key = f.tensors.keys.sorted()[3]
            f.tensors[key]!.values[5] = value
            try file("\(name).safetensors", try f.serialized())
        }
        header["__metadata__"] = nil
        try file("no-metadata.safetensors", try safetensors(header, payload))
        // a small-configuration model beside the tiny one, for commands that expect the other
        try Checkpoint.save(try DiT(config: .small(vocabSize: Tokenizer.vocabularySize), seed: 1), to: dir.appendingPathComponent("small.safetensors"))

        // a pretraining run of the tiny configuration (model + state)
        var pc = PretrainConfig()
        pc.model = "tiny"; pc.steps = 1; pc.batch = 2
        let pretrainer = try Pretrainer(config: pc, excluding: [])
        _ = pretrainer.trainStep()
        try pretrainer.save(to: dir.appendingPathComponent("pretrained.safetensors"))

        // a finished run (of 2 iterations), damaged copies of it, a file, a folder with no run
        var c = setup.config(.grpo, steps: 2)
        c.checkpointEvery = 1
        _ = try setup.uninterruptedRun(c, "run")
        try encoder.encode(c).write(to: dir.appendingPathComponent("run/config.json"))
        let fm = FileManager.default
        for copy in ["run-no-state", "run-cut-metrics", "run-no-metrics"] { try fm.copyItem(at: dir.appendingPathComponent("run"), to: dir.appendingPathComponent(copy)) }
        try fm.removeItem(at: dir.appendingPathComponent("run-no-state/checkpoints/state.safetensors"))
        let metrics = try String(contentsOf: dir.appendingPathComponent("run/metrics.jsonl"), encoding: .utf8).split(separator: "\n")
        try text("run-cut-metrics/metrics.jsonl", metrics[0] + "\n" + metrics[1].prefix(25))
        try fm.removeItem(at: dir.appendingPathComponent("run-no-metrics/metrics.jsonl"))
        // a run whose base model file was replaced after it started
        try fm.copyItem(at: setup.model, to: dir.appendingPathComponent("swapped.safetensors"))
        var s = c
        s.model = dir.appendingPathComponent("swapped.safetensors").path
        _ = try setup.uninterruptedRun(s, "run-swapped")
        s.modelChecksum = SafeTensorsFile.checksum(of: try Data(contentsOf: dir.appendingPathComponent("swapped.safetensors")))
        try encoder.encode(s).write(to: dir.appendingPathComponent("run-swapped/config.json"))
        try Checkpoint.save(try randomTinyModel(seed: 77, scale: 0.05), to: dir.appendingPathComponent("swapped.safetensors"))
        // a user's folder with files of no run
        try fm.createDirectory(at: dir.appendingPathComponent("user-folder"), withIntermediateDirectories: true)
        try text("user-folder/report.html", "<p>my own report</p>\n")
        // a folder of captioned images and a tiny model pretrained on it (its cache written here, before the snapshot)
        try fm.createDirectory(at: dir.appendingPathComponent("images"), withIntermediateDirectories: true)
        for (i, caption) in ["a red tile", "a blue tile", "a green tile"].enumerated() {
            var img = RGBImage(width: 12, height: 12, fill: (UInt8(80 * i), 100, 200))
            img.setPixel(3, 3, (0, 0, 0))
            try file("images/\(i).png", Data(try img.pngData()))
            try text("images/\(i).txt", caption)
        }
        var fc = PretrainConfig()
        fc.model = "tiny"; fc.steps = 1; fc.batch = 2
        fc.data = dir.appendingPathComponent("images").path
        fc.heldOut = 0.3
        let onFolder = try Pretrainer(config: fc, excluding: [], folder: try ImageFolder(path: dir.appendingPathComponent("images").path, size: 16))
        _ = onFolder.trainStep()
        try onFolder.save(to: dir.appendingPathComponent("folder-model.safetensors"))
        try text("a-file", "not a folder\n")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("no-run"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("torn-config"), withIntermediateDirectories: true)
        try text("torn-config/config.json", "{\"algo\": \"grpo\", \"mod")
        snapshot = try Self.contents(of: dir)
    }

    /// Every file under `dir` by relative path.
    static func contents(of dir: URL) throws -> [String: Data] {
        var out: [String: Data] = [:]
        let base = dir.resolvingSymlinksInPath().path
        for case let url as URL in FileManager.default.enumerator(at: dir, includingPropertiesForKeys: nil)! {
            let path = url.resolvingSymlinksInPath().path
            var isDir: ObjCBool = false
            // (a run's empty .lock file, made by the command that refuses to resume it, is no change)
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue, url.lastPathComponent != ".lock" {
                out[String(path.dropFirst(base.count))] = try Data(contentsOf: url)
            }
        }
        return out
    }
}

@Suite struct BadInputTests {
    static let evaluate = ["evaluate", "--model", "$F/tiny.safetensors", "--prompts", "$F/eval.txt", "--per-prompt", "1", "--steps", "2"]
    static let finetune = ["finetune", "--model", "$F/tiny.safetensors", "--prompts", "$F/train.txt", "--eval-prompts", "$F/eval.txt",
                           "--steps", "1", "--prompts-per-iteration", "1", "--group-size", "2", "--sde-steps", "2", "--eval-every", "0",
                           "--threads", "1"]
    static let pretrain = ["pretrain", "--config", "tiny", "--steps", "1", "--batch", "2", "--exclude", "$F/eval.txt", "--threads", "1"]

    static let sweep = ["sweep", "--model", "$F/tiny.safetensors", "--prompts", "$F/train.txt", "--eval-prompts", "$F/eval.txt",
                        "--steps", "1", "--prompts-per-iteration", "1", "--group-size", "2", "--sde-steps", "2", "--eval-every", "0",
                        "--threads", "1", "--out", "sweep"]

    static func prompts(_ file: String) -> [String] { ["evaluate", "--model", "$F/tiny.safetensors", "--prompts", file, "--per-prompt", "1", "--steps", "2"] }
    static func model(_ file: String) -> [String] { ["evaluate", "--model", file, "--prompts", "$F/eval.txt", "--per-prompt", "1", "--steps", "2"] }
    static func reward(_ spec: String) -> [String] { finetune + ["--out", "run", "--reward", spec] }

    static let cases: [BadInput] = [
        // prompt files
        BadInput(name: "empty prompt file", args: prompts("$F/empty.txt"), names: "empty.txt: the file has no prompts"),
        BadInput(name: "missing prompt file", args: prompts("$F/missing.txt"), names: "missing.txt: no such prompt file"),
        BadInput(name: "prompt file is a folder", args: prompts("$F/folder"), names: "folder: is a folder"),
        BadInput(name: "binary prompt file", args: prompts("$F/binary.txt"), names: "binary.txt: not UTF-8"),
        BadInput(name: "unknown word", args: prompts("$F/unknown-word.txt"), names: "unknown-word.txt line 1: unknown word \"flurble\""),
        BadInput(name: "more than 16 words", args: prompts("$F/seventeen-words.txt"), names: "seventeen-words.txt line 1"),
        BadInput(name: "1 MB line", args: prompts("$F/megabyte-line.txt"), names: "characters)\": expected"),
        BadInput(name: "NUL byte in a prompt", args: prompts("$F/nul.txt"), names: "unknown word \"red\\0\""),
        // checkpoints
        BadInput(name: "missing checkpoint", args: model("$F/missing.safetensors"), names: "missing.safetensors"),
        BadInput(name: "truncated checkpoint", args: model("$F/truncated.safetensors"), names: "truncated.safetensors"),
        BadInput(name: "flipped bit", args: model("$F/flipped-bit.safetensors"), names: "flipped-bit.safetensors: checksum mismatch"),
        BadInput(name: "header length past the end", args: model("$F/header-past-end.safetensors"), names: "header-past-end.safetensors: not a safetensors file or truncated"),
        BadInput(name: "huge header length", args: model("$F/huge-header.safetensors"), names: "huge-header.safetensors: not a safetensors file or truncated"),
        BadInput(name: "foreign safetensors", args: model("$F/foreign.safetensors"), names: "foreign.safetensors: not a flowtune checkpoint"),
        BadInput(name: "not safetensors", args: model("$F/not-safetensors.safetensors"), names: "not-safetensors.safetensors"),
        BadInput(name: "no metadata", args: model("$F/no-metadata.safetensors"), names: "no-metadata.safetensors: not a flowtune checkpoint"),
        BadInput(name: "other vocabulary size", args: model("$F/other-vocabulary.safetensors"), names: "the shapes grammar has"),
        BadInput(name: "other text length", args: model("$F/other-text-length.safetensors"), names: "of 12 tokens, the shapes grammar has"),
        BadInput(name: "image size not a multiple of the patch", args: model("$F/image-not-multiple-of-patch.safetensors"), names: "image size 18 is not a multiple of patch 4"),
        BadInput(name: "image size the checker cannot score", args: model("$F/image-too-small.safetensors"), names: "image size 8: the shapes world's renderer and checker"),
        BadInput(name: "absurd width", args: model("$F/huge-width.safetensors"), names: "width 1099511627776 is larger than"),
        BadInput(name: "checkpoint is a folder", args: model("$F/folder"), names: "folder"),
        BadInput(name: "resume another configuration's pretraining", args: ["pretrain", "--config", "small", "--steps", "2", "--batch", "2", "--exclude", "$F/eval.txt", "--resume", "--out", "$F/pretrained.safetensors"],
                 names: "differs from 'small'"),
        BadInput(name: "initialise from another configuration", args: pretrain + ["--init-from", "$F/small.safetensors", "--out", "p.safetensors"],
                 names: "cannot initialise 'tiny' from 'small'"),
        BadInput(name: "configuration far larger than the file", args: model("$F/large-config.safetensors"), names: "large-config.safetensors: tensor"),
        BadInput(name: "metadata of fewer blocks than the file holds", args: model("$F/fewer-blocks.safetensors"), names: "is not part of the configuration"),
        BadInput(name: "a NaN weight", args: model("$F/nan-weight.safetensors"), names: "nan-weight.safetensors: tensor"),
        BadInput(name: "an infinite weight", args: model("$F/inf-weight.safetensors"), names: "a non-finite weight (inf)"),
        BadInput(name: "a weight of 1e30", args: model("$F/huge-weight.safetensors"), names: "beyond 1000000.0"),
        BadInput(name: "NaN weights under finetune", args: ["finetune", "--model", "$F/nan-weight.safetensors", "--prompts", "$F/train.txt", "--eval-prompts", "$F/eval.txt",
                                                           "--steps", "1", "--eval-every", "1", "--out", "run"], names: "the model is damaged"),
        BadInput(name: "a form feed keeps the line numbers", args: prompts("$F/form-feed.txt"), names: "form-feed.txt line 3: unknown word \"fuzzy\""),
        BadInput(name: "prompts without end", args: prompts("/dev/zero"), names: "/dev/zero: longer than 64 MiB"),
        // resumes of damaged runs
        BadInput(name: "resume without the state beside a trained policy", args: ["finetune", "--resume", "$F/run-no-state", "--steps", "3"],
                 names: "state.safetensors is missing, but the run has a trained policy"),
        BadInput(name: "resume over a cut metrics line", args: ["finetune", "--resume", "$F/run-cut-metrics", "--steps", "3"],
                 names: "lacks the lines of iteration(s) 2 that the checkpoint (iteration 2) covers"),
        BadInput(name: "resume without metrics", args: ["finetune", "--resume", "$F/run-no-metrics", "--steps", "3"],
                 names: "lacks the lines of iteration(s) 1, 2"),
        BadInput(name: "resume from a replaced base model", args: ["finetune", "--resume", "$F/run-swapped", "--steps", "3"],
                 names: "swapped.safetensors is not the base model the run"),
        BadInput(name: "resume cut back below the run's iteration", args: ["finetune", "--resume", "$F/run", "--steps", "1"],
                 names: "--steps 1 is below the run's iteration 2"),
        BadInput(name: "pretraining resume with nothing there", args: pretrain + ["--resume", "--out", "none.safetensors"],
                 names: "no pretraining run to resume at"),
        // reward specs
        BadInput(name: "unknown scorer", args: reward("sharpness"), names: "unknown reward 'sharpness'"),
        BadInput(name: "weight not a number", args: reward("brightness=abc"), names: "weight 'abc' of brightness is not a finite number"),
        BadInput(name: "negative weight", args: reward("brightness=-1"), names: "weight -1 of brightness is negative"),
        BadInput(name: "NaN weight", args: reward("brightness=nan"), names: "weight 'nan' of brightness"),
        BadInput(name: "infinite weight", args: reward("brightness=1e40"), names: "weight '1e40' of brightness"),
        BadInput(name: "repeated scorer", args: reward("brightness,saturation,brightness=2"), names: "brightness appears twice"),
        BadInput(name: "empty reward spec", args: reward(""), names: "empty reward spec"),
        BadInput(name: "every weight 0", args: reward("brightness=0"), names: "every weight is 0"),
        BadInput(name: "external scorer without a command", args: reward("external:"), names: "external: needs a command"),
        // numeric options
        BadInput(name: "0 steps", args: finetune + ["--out", "run", "--steps", "0"], names: "--steps must be positive, got 0"),
        BadInput(name: "negative steps", args: finetune + ["--out", "run", "--steps=-3"], names: "--steps must be positive, got -3"),
        BadInput(name: "group size 1", args: finetune + ["--out", "run", "--group-size", "1"], names: "--group-size must be at least 2, got 1"),
        BadInput(name: "SDE window beyond the steps", args: finetune + ["--out", "run", "--sde-steps", "4", "--sde-window", "5"], names: "--sde-window must be at most 4, got 5"),
        BadInput(name: "SDE window 0", args: finetune + ["--out", "run", "--sde-window", "0"], names: "--sde-window must be positive, got 0"),
        BadInput(name: "micro-batch size 0", args: finetune + ["--out", "run", "--micro-batch-size", "0"], names: "--micro-batch-size must be positive, got 0"),
        BadInput(name: "bench over 0 processes", args: ["bench", "--only", "grpo", "--mpi", "0"], names: "--mpi must be at least 1"),
        BadInput(name: "lr NaN", args: finetune + ["--out", "run", "--lr", "nan"], names: "--lr must be a positive finite number, got nan"),
        BadInput(name: "negative lr", args: finetune + ["--out", "run", "--lr=-0.001"], names: "--lr must be a positive finite number"),
        BadInput(name: "threads 0", args: finetune + ["--out", "run", "--threads", "0"], names: "--threads must be at least 1"),
        BadInput(name: "precision fp16", args: finetune + ["--out", "run", "--precision", "fp16"], names: "--precision", exitCode: 64),
        BadInput(name: "bf16 on the OpenBLAS path", args: finetune + ["--out", "run", "--precision", "bf16"],
                 names: "--precision bf16: the openblas kernels have no bf16 GEMM", environment: ["FLOWTUNE_KERNELS": "openblas"]),
        BadInput(name: "bf16 pretraining on the AVX2 path", args: pretrain + ["--out", "m.safetensors", "--precision", "bf16"],
                 names: "--precision bf16: the flowtune-avx2 kernels have no bf16 GEMM", environment: ["FLOWTUNE_KERNELS": "avx2"]),
        BadInput(name: "a sweep over a precision the kernels lack", args: sweep + ["--vary", "precision=fp32,bf16"],
                 names: "the openblas kernels have no bf16 GEMM", environment: ["FLOWTUNE_KERNELS": "openblas"]),
        BadInput(name: "ratio clip with the nft target", args: finetune + ["--out", "run", "--algo", "acflow", "--acflow-target", "nft", "--acflow-ratio-clip", "1e-3"],
                 names: "--acflow-ratio-clip clips the ratio of a transition's probability; it needs --acflow-target transition", exitCode: 64),
        BadInput(name: "negative ratio clip", args: finetune + ["--out", "run", "--algo", "acflow", "--acflow-ratio-clip=-1"], names: "--acflow-ratio-clip"),
        BadInput(name: "AC-Flow tau NaN under another algorithm", args: finetune + ["--out", "run", "--acflow-tau", "nan"], names: "--acflow-tau"),
        BadInput(name: "batch past the limit", args: finetune + ["--out", "run", "--prompts-per-iteration", "4000000000", "--group-size", "4000000000"],
                 names: "--prompts-per-iteration x --group-size must be at most"),
        BadInput(name: "pretraining 0 steps", args: ["pretrain", "--config", "tiny", "--steps", "0", "--exclude", "$F/eval.txt", "--out", "p.safetensors"], names: "--steps must be positive, got 0"),
        BadInput(name: "pretraining lr NaN", args: pretrain + ["--lr", "nan", "--out", "p.safetensors"], names: "--lr must be a positive finite number, got nan"),
        BadInput(name: "distillation scale without a teacher", args: pretrain + ["--distill-cfg", "2", "--out", "p.safetensors"],
                 names: "--distill-from and --distill-cfg go together"),
        BadInput(name: "distillation from a teacher of other images", args: pretrain + ["--distill-from", "$F/small.safetensors", "--distill-cfg", "2", "--out", "p.safetensors"],
                 names: "draws other images or reads other prompts"),
        BadInput(name: "distillation from a missing teacher", args: pretrain + ["--distill-from", "$F/none.safetensors", "--distill-cfg", "2", "--out", "p.safetensors"],
                 names: "none.safetensors"),
        BadInput(name: "caption noise of an unknown kind", args: pretrain + ["--caption-noise", "colour=0.2", "--out", "p.safetensors"],
                 names: "--caption-noise \"colour=0.2\": unknown kind \"colour\" (kinds: count, relation, binding, omission, placement)"),
        BadInput(name: "caption noise probability above 1", args: pretrain + ["--caption-noise", "count=0.2,relation=1.5", "--out", "p.safetensors"],
                 names: "the probability of relation is 1.5; it must be in [0, 1]"),
        BadInput(name: "pretraining on a folder with no image", args: pretrain + ["--data", "$F/folder", "--out", "p.safetensors"], names: "no image (looked for .png, .jpg and .jpeg files"),
        BadInput(name: "pretraining on a file as the folder", args: pretrain + ["--data", "$F/eval.txt", "--out", "p.safetensors"], names: "not a folder"),
        BadInput(name: "pretraining on a missing folder", args: pretrain + ["--data", "$F/nowhere", "--out", "p.safetensors"], names: "nowhere: no such folder"),
        BadInput(name: "caption noise on a folder", args: pretrain + ["--data", "$F/images", "--caption-noise", "count=0.2", "--out", "p.safetensors"],
                 names: "--caption-noise corrupts shapes-world prompts"),
        BadInput(name: "flips without a folder", args: pretrain + ["--flip", "--out", "p.safetensors"], names: "--flip goes with --data"),
        BadInput(name: "a background of four channels", args: pretrain + ["--data", "$F/images", "--background", "1,2,3,4", "--out", "p.safetensors"], names: "--background '1,2,3,4': expected white, black, gray, or R,G,B", exitCode: 64),
        BadInput(name: "holding out every image", args: pretrain + ["--data", "$F/images", "--held-out", "1", "--out", "p.safetensors"], names: "--held-out"),
        BadInput(name: "the checker as the reward of a folder model", args: ["finetune", "--model", "$F/folder-model.safetensors", "--reward", "shape-eval", "--steps", "1", "--out", "run"],
                 names: "shape-eval reads shapes-world prompts"),
        BadInput(name: "a folder for a shapes model", args: finetune + ["--out", "run", "--data", "$F/images"], names: "--data names the folder a model was trained on"),
        // refused before the folder is read: the flag, not the folder, is what is wrong
        BadInput(name: "the strict checker on a folder model", args: ["evaluate", "--model", "$F/folder-model.safetensors", "--data", "$F/nowhere", "--strict"],
                 names: "--strict scores with the checker; a model trained on a folder has no checker"),
        BadInput(name: "the checker's details of a folder model", args: ["evaluate", "--model", "$F/folder-model.safetensors", "--data", "$F/nowhere", "--details"],
                 names: "--details lists the checker's requirements"),
        BadInput(name: "a folder model against another", args: ["evaluate", "--model", "$F/folder-model.safetensors", "--data", "$F/nowhere", "--against", "$F/tiny.safetensors"],
                 names: "--against compares two shapes-world models"),
        BadInput(name: "a folder model's folder elsewhere, empty", args: ["sample", "--model", "$F/folder-model.safetensors", "--data", "$F/folder", "--out", "g.png"],
                 names: "no image"),
        BadInput(name: "the checker on a folder model's captions", args: ["evaluate", "--model", "$F/tiny.safetensors", "--prompts", "data:held-out"],
                 names: "is a shapes-world model: it has no folder of images"),
        BadInput(name: "real images beside a shapes model's samples", args: ["sample", "--model", "$F/tiny.safetensors", "--prompts", "$F/eval.txt", "--real", "--out", "g.png"],
                 names: "--real shows a folder model's images in the grid"),
        BadInput(name: "pretraining EMA decay 1", args: pretrain + ["--ema-decay", "1", "--out", "p.safetensors"], names: "--ema-decay must be in [0.0, 1.0)"),
        BadInput(name: "activations that do not fit in memory", args: ["pretrain", "--config", "s32", "--steps", "1", "--batch", "1048576", "--exclude", "$F/eval.txt", "--out", "p.safetensors"],
                 names: "out of memory: cannot allocate"),
        BadInput(name: "sample scale 0", args: ["sample", "--model", "$F/tiny.safetensors", "--prompts", "$F/eval.txt", "--out", "g.png", "--scale", "0"],
                 names: "--scale must be between 1 and 32, got 0"),
        BadInput(name: "sample grid too wide", args: ["sample", "--model", "$F/tiny.safetensors", "--prompts", "$F/eval.txt", "--out", "g.png", "--per-prompt", "100000"],
                 names: "wider than 32768 pixels"),
        BadInput(name: "sample negative per-prompt", args: ["sample", "--model", "$F/tiny.safetensors", "--per-prompt=-2", "--out", "g.png"],
                 names: "--per-prompt must be positive", exitCode: 64),
        BadInput(name: "not a number", args: finetune + ["--out", "run", "--steps", "ten"], names: "'ten'", exitCode: 64),
        // output folders
        BadInput(name: "empty run folder name", args: finetune + ["--out", ""], names: "--out is empty"),
        BadInput(name: "empty pretraining output", args: pretrain + ["--out", ""], names: "--out is empty"),
        BadInput(name: "empty sample output", args: ["sample", "--model", "$F/tiny.safetensors", "--prompts", "$F/eval.txt", "--out", ""], names: "--out is empty"),
        BadInput(name: "a user's folder as the run folder", args: finetune + ["--out", "$F/user-folder"], names: "holds files that are not a flowtune run (report.html)"),
        BadInput(name: "SDE steps without bound", args: finetune + ["--out", "run", "--sde-steps", "100000000"], names: "--sde-steps must be at most 1000, got 100000000"),
        BadInput(name: "evaluation steps without bound", args: finetune + ["--out", "run", "--eval-steps", "5000"], names: "--eval-steps must be at most 1000"),
        BadInput(name: "sampler steps without bound", args: ["evaluate", "--model", "$F/tiny.safetensors", "--prompts", "$F/eval.txt", "--steps", "100000000"],
                 names: "--steps must be at most 1000", exitCode: 64),
        BadInput(name: "run folder is a file", args: finetune + ["--out", "$F/a-file"], names: "a-file is a file, not a folder"),
        BadInput(name: "run folder under a file", args: finetune + ["--out", "$F/a-file/run"], names: "a-file is a file, not a folder"),
        BadInput(name: "run folder that cannot be created", args: finetune + ["--out", "/proc/flowtune-cannot-be-here/run"],
                 names: "cannot create the folder /proc/flowtune-cannot-be-here"),
        BadInput(name: "existing run without --resume", args: finetune + ["--out", "$F/run"], names: "run already holds a run"),
        BadInput(name: "--resume of a folder with no run", args: ["finetune", "--resume", "$F/no-run"], names: "no-run/config.json: no run to resume"),
        BadInput(name: "--resume of a missing folder", args: ["finetune", "--resume", "$F/missing-run"], names: "missing-run/config.json: no run to resume"),
        BadInput(name: "--resume of a torn config.json", args: ["finetune", "--resume", "$F/torn-config"],
                 names: "torn-config/config.json: not a run configuration this flowtune can resume"),
        BadInput(name: "--resume with options it would ignore", args: ["finetune", "--resume", "$F/run", "--lr", "0.1"], names: "--lr would be ignored"),
        BadInput(name: "pretraining over an existing model", args: pretrain + ["--out", "$F/tiny.safetensors"], names: "tiny.safetensors already exists"),
        BadInput(name: "--config of a torn file", args: ["finetune", "--config", "$F/torn-config/config.json", "--out", "run"],
                 names: "torn-config/config.json: not a run configuration this flowtune can read"),
        BadInput(name: "--config with options it would ignore", args: ["finetune", "--config", "$F/run/config.json", "--lr", "0.1", "--out", "run"],
                 names: "--config takes every hyperparameter from the file; --lr would be ignored"),
        BadInput(name: "sweep over an unknown setting", args: sweep + ["--vary", "colour=red,blue"], names: "--vary colour: not a setting a sweep can vary; axes: algo, model"),
        BadInput(name: "sweep over a bad value", args: sweep + ["--vary", "lr=1e-4,fast"], names: "--vary lr: --lr 'fast': expected a number"),
        BadInput(name: "sweep point the finetune checks refuse", args: sweep + ["--vary", "group-size=4,1"], names: "--group-size must be at least 2, got 1"),
        BadInput(name: "sweep with 0 jobs", args: sweep + ["--jobs", "0"], names: "--jobs must be positive, got 0"),
        BadInput(name: "sweep with bad proxy gains", args: sweep + ["--proxy-gains", "0.1,much"], names: "--proxy-gains needs comma-separated numbers"),
        // learned reward models, best-of-n, the Goodhart chart
        BadInput(name: "a generator as a reward model", args: reward("rm:$F/tiny.safetensors,shape-eval=0"), names: "not a reward model (train one with flowtune train-reward)"),
        BadInput(name: "a missing reward model", args: reward("rm:$F/missing-rm.safetensors"), names: "rm:"),
        BadInput(name: "an empty ensemble member", args: reward("rm:$F/a.safetensors+"), names: "rm: needs the path of a reward model"),
        BadInput(name: "an unknown ensemble combination", args: finetune + ["--out", "run", "--rm-combine", "median"], names: "--rm-combine 'median': give mean, min or mean-std:LAMBDA"),
        BadInput(name: "an unknown reward model size", args: ["train-reward", "--prompts", "$F/train.txt", "--base", "$F/tiny.safetensors", "--size", "rm-huge", "--out", "rm.safetensors"],
                 names: "unknown reward model size 'rm-huge'"),
        BadInput(name: "label noise past one half", args: ["train-reward", "--prompts", "$F/train.txt", "--base", "$F/tiny.safetensors", "--label-noise", "0.7", "--out", "rm.safetensors"],
                 names: "--label-noise"),
        BadInput(name: "a reward model's backbone that is not there", args: ["train-reward", "--prompts", "$F/train.txt", "--base", "$F/tiny.safetensors", "--size", "rm-tiny",
                                                                             "--init-from", "$F/no-backbone.safetensors", "--out", "rm.safetensors"],
                 names: "no-backbone.safetensors: no such generator to start the reward model from"),
        BadInput(name: "best-of-n without a gold", args: ["best-of-n", "--reward", "brightness", "--model", "$F/tiny.safetensors", "--prompts", "$F/eval.txt", "--out", "bon"],
                 names: "has no weight-0 scorer"),
        BadInput(name: "best-of-n of one", args: ["best-of-n", "--reward", "brightness,shape-eval=0", "--model", "$F/tiny.safetensors", "--max-n", "1", "--out", "bon"],
                 names: "--max-n must be at least 2"),
        BadInput(name: "goodhart of a folder without a run", args: ["goodhart", "$F/folder", "--out", "g.png"], names: "folder/metrics.jsonl"),
        BadInput(name: "goodhart of nothing", args: ["goodhart", "--out", "g.png"], names: "give run folders and/or --bon folders"),
        BadInput(name: "goodhart at a distance that is not a number", args: ["goodhart", "$F/folder", "--at-d", "5,far", "--out", "g.png"], names: "--at-d needs comma-separated numbers"),
        BadInput(name: "sample images into a file", args: ["sample", "--model", "$F/tiny.safetensors", "--prompts", "$F/eval.txt", "--per-prompt", "1", "--steps", "2",
                                                          "--out-dir", "$F/a-file"], names: "a-file is a file, not a folder"),
    ]

    /// Runs `binary` with `args` in `cwd`; (exit status, stderr) with nil status after a signal.
    /// A command still running after 120 s is killed (and the case fails).
    static func run(_ binary: URL, _ args: [String], in cwd: URL, environment: [String: String] = [:]) throws -> (status: Int32?, stderr: String) {
        let errURL = cwd.deletingLastPathComponent().appendingPathComponent(cwd.lastPathComponent + ".stderr")
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: errURL) }
        let p = Process()
        p.executableURL = binary
        p.arguments = args
        p.currentDirectoryURL = cwd
        if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        p.standardError = try FileHandle(forWritingTo: errURL)
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let deadline = Date().addingTimeInterval(120)
        while p.isRunning && Date() < deadline { usleep(10_000) }
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
        let stderr = String(decoding: try Data(contentsOf: errURL), as: UTF8.self)
        return (p.terminationReason == .exit ? p.terminationStatus : nil, stderr)
    }

    @Test(.enabled(if: !cliBinaries.isEmpty, "the flowtune binary is not built beside the tests (swift build --build-tests builds it)"),
          arguments: cliBinaries, cases)
    func badInputIsOneClearErrorAndChangesNothing(_ binary: URL, _ bad: BadInput) throws {
        let fixtures = BadInputFixtures.shared
        let cwd = fixtures.dir.deletingLastPathComponent().appendingPathComponent("ft-badinput-cwd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: cwd, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: cwd) }
        let args = bad.args.map { $0.replacingOccurrences(of: "$F", with: fixtures.dir.path) }
        let (status, stderr) = try Self.run(binary, args, in: cwd, environment: bad.environment)
        let lines = stderr.split(separator: "\n")
        let kind = binary.deletingLastPathComponent().lastPathComponent
        #expect(status == bad.exitCode, "\(kind): \(bad.name): exit \(status.map(String.init) ?? "by a signal"); stderr: \(stderr.prefix(2000))")
        #expect(lines.count == 1 && lines[0].hasPrefix("error: ") && lines[0].contains(bad.names),
                "\(kind): \(bad.name): stderr should be one line naming '\(bad.names)', got: \(stderr.prefix(2000))")
        #expect(try FileManager.default.contentsOfDirectory(atPath: cwd.path).isEmpty, "\(kind): \(bad.name) left files behind")
        #expect(try BadInputFixtures.contents(of: fixtures.dir) == fixtures.snapshot, "\(kind): \(bad.name) changed the inputs")
    }

    /// A folder the user cannot write to (as root every folder is writable, so this runs only
    /// for other users).
    @Test(.enabled(if: !cliBinaries.isEmpty && geteuid() != 0, "needs the flowtune binary and a user other than root"),
          arguments: cliBinaries)
    func readOnlyOutputFolder(_ binary: URL) throws {
        let fixtures = BadInputFixtures.shared
        let cwd = fixtures.dir.deletingLastPathComponent().appendingPathComponent("ft-badinput-ro-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: cwd, withIntermediateDirectories: true)
        defer { chmod(cwd.path, 0o755); try? FileManager.default.removeItem(at: cwd) }
        chmod(cwd.path, 0o555)
        let args = Self.finetune.map { $0.replacingOccurrences(of: "$F", with: fixtures.dir.path) } + ["--out", "run"]
        let (status, stderr) = try Self.run(binary, args, in: cwd)
        #expect(status == 1)
        #expect(stderr.split(separator: "\n").count == 1 && stderr.contains("cannot create the folder") && stderr.contains("Permission denied"), "\(stderr)")
    }
}
