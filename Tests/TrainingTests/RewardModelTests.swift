import Testing
import TestSupport
import Foundation
import Analysis
import Tensor
import Imaging
import Shapes
import Model
import Flow
import Rewards
import Training

/// Learned reward models: the Bradley-Terry loss, the network's gradient, label noise,
/// ensembles, training on separable data, the files; the exact path KL; best-of-n and the fits.
@Suite struct RewardModelTests {
    static func tinyRM(seed: UInt64 = 1) throws -> RewardModel {
        try RewardModel(config: .tiny(vocabSize: Tokenizer.vocabularySize), seed: seed)
    }

    @Test func bradleyTerryLossAndGradientMatchFiniteDifferences() {
        for (delta, y) in [(Float(0.3), Float(1)), (-1.7, 1), (2.5, 0), (0, 0), (-30, 1), (30, 0)] {
            let (loss, grad) = bradleyTerry(delta: delta, y: y)
            // the closed form: -[y log s(d) + (1 - y) log s(-d)]
            let s = 1 / (1 + exp(-Double(delta)))
            let expected = -(Double(y) * log(max(s, 1e-300)) + (1 - Double(y)) * log(max(1 - s, 1e-300)))
            if abs(delta) < 20 { #expect(abs(Double(loss) - expected) < 1e-5) }
            #expect(loss.isFinite && loss >= 0)
            let h: Float = 1e-2
            let fd = (bradleyTerry(delta: delta + h, y: y).loss - bradleyTerry(delta: delta - h, y: y).loss) / (2 * h)
            #expect(abs(fd - grad) < 2e-3, "delta \(delta), y \(y): analytic \(grad), finite difference \(fd)")
        }
        // the label decides the direction: a pair scored the right way round has the smaller loss
        #expect(bradleyTerry(delta: 1, y: 1).loss < bradleyTerry(delta: 1, y: 0).loss)
    }

    /// d(score)/d(weight) of the network through `scores`/`backward` against central differences.
    @Test func rewardModelGradientMatchesFiniteDifferences() throws {
        let rm = try Self.tinyRM()
        // move the zero-initialised adaLN and final weights off zero, so every path carries gradient
        var rng = RNG(seed: 9)
        for i in 0..<rm.parameterCount { rm.net.params.pointer[i] += rng.normal() * 0.05 }
        let n = rm.config.pixelsPerImage, B = 2
        let images = (0..<(B * n)).map { _ in rng.uniform(-1, 1) }
        let tokens = try Tokenizer.encode("a red circle on a blue background") + Tokenizer.encode("two green squares on a gray background")
        let ws = try rm.net.makeWorkspace(batch: B, training: true)
        let weights: [Float] = [0.7, -1.3]     // loss = sum_b w_b r_b
        func loss() -> Double {
            let r = images.withUnsafeBufferPointer { im in tokens.withUnsafeBufferPointer { tk in rm.scores(ws, images: im.baseAddress!, tokens: tk.baseAddress!, batch: B) } }
            return zip(r, weights).reduce(0) { $0 + Double($1.0 * $1.1) }
        }
        _ = loss()
        rm.net.grads.zero()
        rm.backward(ws, dScores: weights)
        let analytic = rm.net.grads.array
        for name in ["final.linear.weight", "blocks.0.qkv.weight", "patch_embed.weight", "token_embed.weight", "blocks.0.adaLN.weight"] {
            let e = rm.net.layout.entry(name)!
            for k in [0, e.count / 3, e.count - 1] {
                let i = e.offset + k, saved = rm.net.params.pointer[i], h: Float = 1e-2
                rm.net.params.pointer[i] = saved + h; let up = loss()
                rm.net.params.pointer[i] = saved - h; let down = loss()
                rm.net.params.pointer[i] = saved
                let fd = (up - down) / Double(2 * h)
                #expect(abs(fd - Double(analytic[i])) < 2e-3 + 0.03 * abs(fd), "\(name)[\(k)]: analytic \(analytic[i]), finite difference \(fd)")
            }
        }
    }

    static func data(prompts count: Int, perPrompt: Int, size: Int = 16, seed: UInt64 = 4) throws -> RewardData {
        // a prompt's images are flat grey levels; the gold is their brightness (separable)
        let texts = ["a red circle on a blue background", "a green square on a gray background", "two blue triangles on a white background",
                     "a yellow circle on a black background", "an orange square on a purple background", "a purple triangle on a green background"]
        let prompts = try (0..<count).map { try Prompt(texts[$0 % texts.count]) }
        var rng = RNG(seed: seed)
        var pixels: [Float] = [], promptOf: [Int] = [], gold: [Float] = []
        for p in 0..<count {
            for _ in 0..<perPrompt {
                let level = rng.uniform(-0.9, 0.9)
                pixels += (0..<(size * size * 3)).map { _ in level + rng.uniform(-0.05, 0.05) }
                promptOf.append(p); gold.append((level + 1) / 2)
            }
        }
        return RewardData(imageSize: size, pixels: pixels, prompt: promptOf, gold: gold,
                          heldOut: RewardData.heldOut(prompts: count, fraction: 0.25, seed: seed), prompts: prompts)
    }

    @Test func labelNoiseFlipsTheGivenFractionOfPairs() throws {
        let d = try Self.data(prompts: 12, perPrompt: 12)
        let clean = d.trainingPairs(limit: nil, labelNoise: 0, seed: 5)
        let noisy = d.trainingPairs(limit: nil, labelNoise: 0.25, seed: 5)
        #expect(clean.count == noisy.count && clean.count > 400)
        #expect(clean.allSatisfy { ($0.y == 1) == (d.gold[$0.i] > d.gold[$0.j]) })
        let flipped = zip(clean, noisy).filter { $0.y != $1.y }.count
        let rate = Double(flipped) / Double(clean.count), se = (0.25 * 0.75 / Double(clean.count)).squareRoot()
        #expect(abs(rate - 0.25) < 4 * se, "flipped \(rate)")
        #expect(zip(clean, noisy).allSatisfy { $0.i == $1.i && $0.j == $1.j })
        // the limit keeps that many pairs; no pair of a held-out prompt is trained on
        #expect(d.trainingPairs(limit: 50, labelNoise: 0, seed: 5).count == 50)
        #expect(clean.allSatisfy { !d.heldOut[d.prompt[$0.i]] })
        #expect(d.pairs(heldOut: true).allSatisfy { d.heldOut[d.prompt[$0.i]] && d.prompt[$0.i] == d.prompt[$0.j] })
    }

    @Test func aTinyRewardModelLearnsSeparableDataToNearPerfectAgreement() throws {
        let d = try Self.data(prompts: 8, perPrompt: 10)
        var c = RewardTrainConfig()
        c.preset = "rm-tiny"; c.steps = 150; c.batch = 16; c.lr = 3e-3; c.warmup = 10; c.seed = 2
        let t = try RewardTrainer(config: c, data: d, network: .tiny(vocabSize: Tokenizer.vocabularySize))
        let before = try t.evaluate().heldOut
        for _ in 0..<c.steps { #expect(t.trainStep().isFinite) }
        let after = try t.evaluate()
        #expect(after.heldOut > 0.95, "held-out agreement \(after.heldOut) (before \(before))")
        #expect(after.std > 0)
    }

    /// A resumed training continues exactly: 12 steps, a checkpoint, 8 more in a new trainer equal
    /// 20 straight; a resume with other options is refused.
    @Test func rewardTrainingResumesExactly() throws {
        let d = try Self.data(prompts: 6, perPrompt: 6)
        var c = RewardTrainConfig()
        c.preset = "rm-tiny"; c.steps = 20; c.batch = 8; c.lr = 3e-3; c.warmup = 4; c.seed = 3
        let tiny = ModelConfig.tiny(vocabSize: Tokenizer.vocabularySize)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ft-rmresume-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("rm.safetensors")
        let straight = try RewardTrainer(config: c, data: d, network: tiny)
        for _ in 0..<20 { straight.trainStep() }
        let first = try RewardTrainer(config: c, data: d, network: tiny)
        for _ in 0..<12 { first.trainStep() }
        try first.save(to: url, metadata: [:])
        let second = try RewardTrainer(config: c, data: d, network: tiny)
        try second.resume(from: url)
        #expect(second.step == 12)
        for _ in 0..<8 { second.trainStep() }
        #expect(second.model.net.params.array == straight.model.net.params.array)
        var other = c
        other.lr = 1e-3
        let refused = try RewardTrainer(config: other, data: d, network: tiny)
        do { try refused.resume(from: url); Issue.record("a resume with another lr was accepted") }
        catch { #expect("\(error)".contains("lr"), "\(error)") }
    }

    @Test func rewardModelFilesRoundTripAndForeignFilesAreOneLineErrors() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ft-rm-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let rm = try Self.tinyRM()
        rm.scoreMean = 0.25; rm.scoreStd = 2
        let url = dir.appendingPathComponent("rm.safetensors")
        try writeAtomically(try rm.file(extra: [RewardModel.Key.agreement: "0.9"]).serialized(), to: url)
        let (back, meta) = try RewardModel.load(url)
        #expect(back.net.params.array == rm.net.params.array && back.scoreMean == 0.25 && back.scoreStd == 2)
        #expect(meta[RewardModel.Key.agreement] == "0.9")
        // the scorer normalises: (raw - mean) / std
        let scorer = try LearnedRewardScorer(spec: url.path)
        let img = [Float](repeating: 0.1, count: 16 * 16 * 3)
        let raw = try rm.scoreAll(images: img, tokens: try Tokenizer.encode("a red circle on a blue background"))
        let s = try scorer.score(ImageBatch(images: [img], size: 16), prompts: [try Prompt("a red circle on a blue background")])
        #expect(abs(s[0] - (raw[0] - 0.25) / 2) < 1e-5)
        // a generator is not a reward model, nor the other way round
        let gen = try DiT(config: .tiny(vocabSize: Tokenizer.vocabularySize), seed: 1)
        let genURL = dir.appendingPathComponent("gen.safetensors")
        try Checkpoint.save(gen, to: genURL)
        func message(_ body: () throws -> Void) -> String {
            do { try body(); return "" } catch { return "\(error)" }
        }
        let m1 = message { _ = try RewardModel.load(genURL) }
        #expect(m1.contains("not a reward model") && !m1.contains("\n"), "\(m1)")
        let m2 = message { _ = try Checkpoint.load(url) }
        #expect(m2.contains("a reward model") && m2.contains("not a generator"), "\(m2)")
        let junk = dir.appendingPathComponent("junk.safetensors")
        try Data("not a checkpoint at all".utf8).write(to: junk)
        let m3 = message { _ = try LearnedRewardScorer(spec: junk.path) }
        #expect(m3.hasPrefix("rm:\(junk.path)") && !m3.contains("\n"), "\(m3)")
        // a damaged statistic is refused
        var f = try SafeTensorsFile(contentsOf: url)
        f.metadata[RewardModel.Key.scoreStd] = "0"
        try writeAtomically(try f.serialized(), to: url)
        #expect(message { _ = try RewardModel.load(url) }.contains("score statistics"))
        // images of another size than the model reads
        let m4 = message { _ = try scorer.score(ImageBatch(images: [[Float](repeating: 0, count: 32 * 32 * 3)], size: 32), prompts: [try Prompt("a red circle on a blue background")]) }
        #expect(m4.contains("16 pixels"), "\(m4)")
    }

    /// The data: base samples then renderings, labelled by the gold; its file is reused only
    /// with the options it was made with.
    @Test func rewardDataIsDrawnLabelledAndReadBack() throws {
        let base = try DiT(config: .tiny(vocabSize: Tokenizer.vocabularySize), seed: 2)
        var c = RewardTrainConfig()
        c.samplesPerPrompt = 2; c.rendersPerPrompt = 2; c.extraPrompts = 2; c.sampleSteps = 3; c.heldOutFraction = 0.3
        let file = try ["a red circle on a blue background", "two green squares on a gray background", "a blue triangle on a white background"].map { try Prompt($0) }
        let gold = try CombinedReward(parsing: "shape-eval")
        let d = try RewardData.make(config: c, base: base, prompts: file, excluding: [], gold: gold)
        #expect(d.count == 3 * 2 + 5 * 2 && d.prompts.count == 5)
        #expect(d.rendered == (0..<16).map { $0 >= 6 })
        #expect(d.prompt == [0, 0, 1, 1, 2, 2, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4])
        #expect(d.heldOut.filter { $0 }.count == 1 && !d.heldOut[3] && !d.heldOut[4])     // extra prompts are training data
        #expect(!file.map(\.text).contains(d.prompts[3].text))
        // the first rendering of a prompt is the prompt itself: the checker passes it
        let clean = try gold.evaluate(ImageBatch(pixels: Array(d.pixels[(6 * d.valuesPerImage)..<(7 * d.valuesPerImage)]), size: 16), prompts: [file[0]]).total[0]
        #expect(d.gold[6] == clean)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ft-rmdata-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("d.safetensors")
        try d.save(to: url, key: c.dataKey)
        let back = try #require(try RewardData.load(from: url, key: c.dataKey, prompts: d.prompts))
        #expect(back.pixels == d.pixels && back.gold == d.gold && back.prompt == d.prompt && back.heldOut == d.heldOut && back.rendered == d.rendered)
        var other = c
        other.samplesPerPrompt = 3
        do { _ = try RewardData.load(from: url, key: other.dataKey, prompts: d.prompts); Issue.record("a data file of other options was reused") }
        catch { #expect("\(error)".contains("samples_per_prompt 3 (the file has 2)"), "\(error)") }
        #expect(try RewardData.load(from: dir.appendingPathComponent("absent.safetensors"), key: c.dataKey, prompts: d.prompts) == nil)
    }

    @Test func rewardSpecsReadLearnedModelsAndEnsembles() throws {
        let s = try RewardSpec(parsing: "rm:a.safetensors+runs/lr=1e-4/b.safetensors=2,shape-eval=0")
        #expect(s.terms.map(\.name) == ["rm:a.safetensors+runs/lr=1e-4/b.safetensors", "shape-eval"])
        #expect(s.terms.map(\.weight) == [2, 0])
        #expect(try RewardSpec(parsing: "rm:x=y.safetensors").terms[0].name == "rm:x=y.safetensors")
        #expect(throws: RewardError.self) { try RewardSpec(parsing: "rm:") }
        #expect(throws: RewardError.self) { try RewardSpec(parsing: "rm:a+") }
        // a missing file is an error when the scorer is made, naming the file
        let missing = "/nonexistent/rm.safetensors"
        #expect(throws: RewardError.self) { try RewardSpec(parsing: "rm:\(missing)").makeReward() }
    }

}
