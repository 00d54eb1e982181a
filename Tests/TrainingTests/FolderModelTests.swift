import Testing
import TestSupport
import Foundation
import Analysis
import Tensor
import Imaging
import Shapes
import Dataset
import Model
import Flow
import Training
import Rewards

@Suite struct FolderModelTests {
    @Test func theVocabularyAndTheSplitAreStoredAndRead() throws {
        let fm = try FolderModel()
        defer { fm.remove() }
        let f = try SafeTensorsFile(contentsOf: fm.model)
        #expect(f.metadata[Checkpoint.vocabularyKey] != nil && f.metadata[Checkpoint.dataKey] != nil)
        let m = try Checkpoint.load(fm.model)
        guard case .words(let v) = m.vocabulary else { Issue.record("no word vocabulary"); return }
        let p = try #require(m.trainedOn)
        #expect(p.heldOut.count == 1 && p.images == 4)
        // the vocabulary is the training captions' (the held-out one's words are not in it, unless shared)
        let images = try ImageFolder(path: fm.folder.url.path, size: 16)
        let train = images.entries.filter { !p.heldOut.contains($0.file) }
        #expect(v == WordVocabulary.build(captions: train.map(\.caption), minCount: 1, maxLength: 32))
        #expect(m.config.vocabSize == v.size && m.config.textLength == v.textLength)
        // a prompt with a word the captions never had is sampled, the word counted as unknown
        let prompt = try m.vocabulary.prompt("a zebra of grey glass")
        #expect(prompt.unknownWords.contains("zebra"))
        let images2 = try Generator(sampler: EulerSampler(steps: 3, cfgScale: 2)).generate(model: m, prompts: [prompt], perPrompt: 2, seed: 1)
        #expect(images2[0].count == 2 && images2[0].allSatisfy { $0.count == 16 * 16 * 3 && $0.allSatisfy(\.isFinite) })
        // the held-out captions are the folder's
        let data = try FolderData(model: m, source: fm.model.path)
        let held = try data.prompts(data.heldOut, vocabulary: m.vocabulary, name: FolderData.heldOutCaptions)
        #expect(held.prompts == p.heldOut.map { file in images.entries.first { $0.file == file }!.caption })
    }

    @Test func pretrainingOnAFolderResumesExactly() throws {
        let fm = try FolderModel(steps: 2)
        defer { fm.remove() }
        var c = fm.config
        c.steps = 5
        let images = try ImageFolder(path: fm.folder.url.path, size: 16)
        let a = try Pretrainer(config: c, excluding: [], folder: images)
        try a.resume(from: fm.model)
        let la = (0..<3).map { _ in a.trainStep() }
        let b = try Pretrainer(config: c, excluding: [], folder: images)
        try b.resume(from: fm.model)
        #expect(b.step == 2 && (0..<3).map { _ in b.trainStep() } == la)
        // another image in the folder: other data, refused
        try fm.folder.write("new.png", try TestFolder.gradient(width: 9, height: 9).pngData(), caption: "a new one")
        let changed = try Pretrainer(config: c, excluding: [], folder: try ImageFolder(path: fm.folder.url.path, size: 16))
        #expect { try changed.resume(from: fm.model) } throws: { "\($0)".contains("holds other images now") }
        // and the model's folder no longer holds the images it was trained on
        #expect { try FolderData(model: try Checkpoint.load(fm.model), source: "m") } throws: { "\($0)".contains("other images") }
    }

    @Test func finetuningAFolderModelWritesARunAndResumes() throws {
        let fm = try FolderModel()
        defer { fm.remove() }
        let c = fm.finetuneConfig(steps: 4)
        let full = try Finetuner(config: c, runDir: fm.dir.appendingPathComponent("full"))
        #expect(full.config.prompts == FolderData.trainCaptions && full.config.evalPrompts == FolderData.heldOutCaptions)
        #expect(full.evalPrompts.count == 1 && full.trainPrompts.entries.count == 3)
        try full.evaluateBase()
        while full.iteration < 4 { try full.step() }
        let lines = try String(contentsOf: full.metricsURL, encoding: .utf8).split(separator: "\n")
        let first = try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as! [String: Any]
        let eval = first["eval"] as! [String: Any]
        #expect(eval["shape_eval"] == nil && eval["fd"] is Double && eval["fd_floor"] is Double && eval["kl_base"] is Double)
        #expect(FileManager.default.fileExists(atPath: fm.dir.appendingPathComponent("full/grids/step-00004.png").path))
        // cut after 3 iterations (checkpoint at 2) and resumed: the same weights
        let dir = fm.dir.appendingPathComponent("cut")
        let a = try Finetuner(config: c, runDir: dir)
        try a.evaluateBase()
        while a.iteration < 3 { try a.step() }
        let b = try Finetuner(config: a.config, runDir: dir, resume: true)
        #expect(b.iteration == 2)
        while b.iteration < 4 { try b.step() }
        #expect(b.policy.params.array == full.policy.params.array)
        // a policy checkpoint keeps the vocabulary: it samples as its base does
        #expect(try Checkpoint.load(b.policyURL).vocabulary == full.reference.vocabulary)
    }

    @Test func shapesOnlyThingsAreRefusedForAFolderModel() throws {
        let fm = try FolderModel()
        defer { fm.remove() }
        var c = fm.finetuneConfig(steps: 2)
        c.reward = "shape-eval"
        #expect { try Finetuner(config: c, runDir: fm.dir.appendingPathComponent("r")) } throws: { "\($0)".contains("reads shapes-world prompts") }
        c.reward = "saturation,shape-soft=0"
        #expect { try Finetuner(config: c, runDir: fm.dir.appendingPathComponent("r")) } throws: { "\($0)".contains("shape-soft") }
        // a checker scorer handed a free-text prompt says why
        let m = try Checkpoint.load(fm.model)
        let batch = ImageBatch(pixels: [Float](repeating: 0, count: 16 * 16 * 3), size: 16)
        #expect { try ShapeEvalScorer().score(batch, prompts: [try m.vocabulary.prompt("grey square")]) } throws: { "\($0)".contains("shapes world") }
        // caption noise is for the shapes grammar
        var p = fm.config
        p.captionNoise = try CaptionNoise(parsing: "count=0.5", named: "--caption-noise")
        #expect(throws: InvalidOption.self) { try p.validate() }
    }
}
