import Testing
import Foundation
import Tensor
import Model
import Flow
import Shapes
import Training
import TestSupport

@Suite struct PretrainingTests {
    /// About 100 steps of tiny pretraining lower the loss (fixed seed).
    @Test(.enabled(if: ProcessInfo.processInfo.environment["FLOWTUNE_SLOW_TESTS"] == "1", "a slow test: FLOWTUNE_SLOW_TESTS=1 runs it"))
    func tinyPretrainingLowersTheLoss() throws {
        var cfg = PretrainConfig()
        cfg.model = "tiny"; cfg.steps = 120; cfg.batch = 16; cfg.warmup = 10; cfg.lr = 2e-3; cfg.seed = 3
        let t = try Pretrainer(config: cfg, excluding: [])
        let losses = (0..<cfg.steps).map { _ in t.trainStep() }
        let first = losses.prefix(10).reduce(0, +) / 10, last = losses.suffix(10).reduce(0, +) / 10
        #expect(last < 0.7 * first, "first \(first) last \(last)")
    }

    /// Guidance distillation's target is the teacher's guided velocity image by image:
    /// v_null + w (v_prompt - v_null) at each image's own state and time (one network pass for
    /// all); a NULL prompt's target is the unguided velocity.
    @Test func guidedTeacherTargetIsTheGuidedVelocity() throws {
        let m = try randomModel(seed: 21)
        let B = 3, n = m.config.pixelsPerImage, L = m.config.textLength, w: Float = 2.5
        var rng = RNG(seed: 4)
        let x = rng.normals(B * n), t: [Float] = [0.9, 0.4, 0.1]
        let tokens = try Tokenizer.encode("a red circle on a blue background") + Tokenizer.encode("two green squares on a black background")
            + m.config.nullTokens
        var target = [Float](repeating: 0, count: B * n)
        try GuidedTeacher(model: m, scale: w, batch: B).target(xt: x, t: t, tokens: tokens, batch: B, into: &target)
        let plain = try m.makeWorkspace(batch: 1, training: false)
        func v(_ b: Int, _ tok: [Int32]) -> [Float] {
            Array(UnsafeBufferPointer(start: m.forward(plain, x: Array(x[(b * n)..<((b + 1) * n)]), t: [t[b]], tokens: tok, batch: 1), count: n))
        }
        for b in 0..<B {
            let vc = v(b, Array(tokens[(b * L)..<((b + 1) * L)])), vn = v(b, m.config.nullTokens)
            let expected = (0..<n).map { vn[$0] + w * (vc[$0] - vn[$0]) }
            #expect(zip(expected, target[(b * n)..<((b + 1) * n)]).map { abs($0 - $1) }.max()! < 1e-4)
            if b == B - 1 { #expect(zip(vn, target[(b * n)..<((b + 1) * n)]).map { abs($0 - $1) }.max()! < 1e-5) }
            else { #expect(zip(vn, vc).map { abs($0 - $1) }.max()! > 1e-2) }     // the prompt matters, so guidance does
        }
    }

    /// A student that is its teacher has nothing to learn at scale 1 (loss and gradient 0); at
    /// scale 3 it has, and a few steps of distillation lower that loss.
    @Test func guidanceDistillationLearnsTheGuidedVelocity() throws {
        let teacher = try randomModel(seed: 31)
        var cfg = PretrainConfig()
        cfg.model = "tiny"; cfg.steps = 40; cfg.batch = 8; cfg.warmup = 1; cfg.lr = 3e-3; cfg.seed = 2
        cfg.distillFrom = "teacher"; cfg.distillCFG = 1
        let same = try Pretrainer(config: cfg, excluding: [], initFrom: teacher, teacher: teacher)
        #expect(same.trainStep() < 1e-9)
        #expect(same.model.grads.array.map(abs).max()! < 1e-5)
        cfg.distillCFG = 3
        let student = try Pretrainer(config: cfg, excluding: [], initFrom: teacher, teacher: teacher)
        let losses = (0..<cfg.steps).map { _ in student.trainStep() }
        let first = losses.prefix(5).reduce(0, +) / 5, last = losses.suffix(5).reduce(0, +) / 5
        #expect(first > 1e-3)
        #expect(last < 0.5 * first, "first \(first) last \(last)")
        // the options go together, and the teacher must draw the student's images
        var half = cfg
        half.distillFrom = nil
        #expect(throws: InvalidOption.self) { try half.validate() }
        var big = ModelConfig.tiny(vocabSize: Tokenizer.vocabularySize)
        big.imageSize *= 2
        let other = try DiT(config: big, seed: 1)
        #expect(throws: ModelError.self) { _ = try Pretrainer(config: cfg, excluding: [], teacher: other) }
    }

    /// With caption noise an image is drawn for a corrupted prompt under the original caption:
    /// the captions (and the batch's stream) are the clean run's, the images and the teacher's
    /// prompts differ exactly where a prompt was corrupted (here every counting prompt), and the
    /// model file records the noise.
    @Test func captionNoiseDrawsCorruptedPromptsUnderTheCaption() throws {
        var cfg = PretrainConfig()
        cfg.model = "tiny"; cfg.steps = 1; cfg.batch = 48; cfg.warmup = 1; cfg.seed = 4
        let clean = try Pretrainer(config: cfg, excluding: [])
        cfg.captionNoise = try CaptionNoise(parsing: "count=1")
        let noisy = try Pretrainer(config: cfg, excluding: [])
        var r1 = RNG(seed: 8), r2 = RNG(seed: 8)
        let a = clean.makeBatch(rng: &r1), b = noisy.makeBatch(rng: &r2)
        #expect(r1.nextUInt64() == r2.nextUInt64())
        #expect(a.tokens == b.tokens && a.teacherTokens == nil)
        let drawn = try #require(b.teacherTokens)
        let n = clean.model.config.pixelsPerImage, L = clean.model.config.textLength
        let counting = Set(countWords.map { try! Tokenizer.encode($0 + " red circles on a blue background")[0] })
        var corrupted = 0
        for i in 0..<cfg.batch {
            let caption = Array(a.tokens[(i * L)..<((i + 1) * L)]), teacher = Array(drawn[(i * L)..<((i + 1) * L)])
            let sameImage = a.x0[(i * n)..<((i + 1) * n)] == b.x0[(i * n)..<((i + 1) * n)]
            #expect(sameImage == (caption == teacher), "image \(i)")
            #expect((caption != teacher) == counting.contains(caption[0]), "image \(i): only counting prompts are corrupted")
            if caption != teacher { corrupted += 1 }
        }
        #expect(corrupted > 0 && corrupted < cfg.batch)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ft-cn-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("m.safetensors")
        try noisy.save(to: url)
        #expect(try SafeTensorsFile(contentsOf: url).metadata[Checkpoint.captionNoiseKey] == "count=1.0")
        try clean.save(to: dir.appendingPathComponent("c.safetensors"))
        #expect(try SafeTensorsFile(contentsOf: dir.appendingPathComponent("c.safetensors")).metadata[Checkpoint.captionNoiseKey] == nil)
    }

    /// Save + resume continues exactly where an uninterrupted run would be.
    @Test func pretrainingResumesExactly() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ft-pt-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        var cfg = PretrainConfig()
        cfg.model = "tiny"; cfg.steps = 6; cfg.batch = 4; cfg.warmup = 2; cfg.seed = 9
        let a = try Pretrainer(config: cfg, excluding: [])
        for _ in 0..<3 { a.trainStep() }
        let url = dir.appendingPathComponent("m.safetensors")
        try a.save(to: url)
        let la = (0..<3).map { _ in a.trainStep() }
        let b = try Pretrainer(config: cfg, excluding: [])
        try b.resume(from: url)
        #expect(b.step == 3)
        let lb = (0..<3).map { _ in b.trainStep() }
        #expect(la == lb)
        #expect(a.model.params.array == b.model.params.array)
        // other options than the run's are refused (naming them); --steps alone may change
        var other = cfg
        other.lr = 5e-4; other.tMean = -1.2
        let c = try Pretrainer(config: other, excluding: [])
        let message: String
        do { try c.resume(from: url); message = "" } catch { message = "\(error)" }
        #expect(message.contains("--lr 0.0005 (the run has 0.001)") && message.contains("--t-mean -1.2") && message.contains("only --steps may change"))
        var longer = cfg
        longer.steps = 60
        try Pretrainer(config: longer, excluding: []).resume(from: url)
    }
}
