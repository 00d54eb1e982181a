import Testing
import Foundation
import Analysis
import Tensor
import Model
import Shapes

@Suite struct CheckpointTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    static func tempDir() throws -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("ft-ckpt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d
    }

    static func message(_ body: () throws -> Void) -> String {
        do { try body(); return "" } catch { return "\(error)" }
    }

    @Test func theNetworksNullPromptIsTheTokenizers() {
        #expect(ModelConfig.s32(vocabSize: Tokenizer.vocabularySize).nullTokens == Tokenizer.nullTokens)
    }

    @Test func roundTripIsBitExact() throws {
        let dir = try Self.tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        let m = try DiT(config: .tiny(vocabSize: Tokenizer.vocabularySize), seed: 3)
        var rng = RNG(seed: 1)
        for i in 0..<m.params.count { m.params[i] = rng.normal() }
        let url = dir.appendingPathComponent("m.safetensors")
        try Checkpoint.save(m, to: url)
        let back = try Checkpoint.load(url)
        #expect(back.config == m.config)
        #expect(back.params.array.map(\.bitPattern) == m.params.array.map(\.bitPattern))
        // nothing but the file itself is left in the folder (atomic write)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["m.safetensors"])
    }

    @Test func readsAFileWrittenByTheReferenceWriter() throws {
        // Tests/ModelTests/Fixtures/reference.safetensors was written by Python's safetensors.numpy.save_file.
        let f = try SafeTensorsFile(contentsOf: Self.fixtures.appendingPathComponent("reference.safetensors"))
        #expect(f.metadata["source"] == "python safetensors")
        let w = try #require(f.tensors["layer.weight"])
        #expect(w.shape == [3, 4])
        #expect(w.values == (0..<12).map { Float($0) / 8 - 0.5 })
        #expect(f.tensors["layer.bias"]?.values == [1.5, -2.25, 3e-8, 1e9])
        #expect(f.tensors["empty"]?.shape == [2, 0])
        // and it is not a flowtune checkpoint
        #expect(Self.message { _ = try Checkpoint.load(Self.fixtures.appendingPathComponent("reference.safetensors")) }
            .contains("not a flowtune checkpoint"))
    }

    @Test func checkpointsWithoutAHeadFieldAreThePlainNetworkAndConfigurationsAreNotInterchangeable() throws {
        let dir = try Self.tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        let m = try DiT(config: .tiny(vocabSize: Tokenizer.vocabularySize), seed: 4)
        var f = try Checkpoint.file(config: m.config, params: m.params)
        // a checkpoint written before the convolutional head existed has no "headChannels"
        var json = try #require(JSONSerialization.jsonObject(with: Data(f.metadata["config"]!.utf8)) as? [String: Any])
        #expect(json["headChannels"] as? Int == 0)
        json["headChannels"] = nil
        f.metadata["config"] = String(data: try JSONSerialization.data(withJSONObject: json), encoding: .utf8)!
        let old = dir.appendingPathComponent("old.safetensors")
        try f.serialized().write(to: old)
        let back = try Checkpoint.load(old)
        #expect(back.config == m.config && !back.config.convHead)
        // s32 and s32c differ in name and head: one loaded as the other is a clear error
        let plain = try DiT(config: .s32(vocabSize: Tokenizer.vocabularySize)), url = dir.appendingPathComponent("s32.safetensors")
        try Checkpoint.save(plain, to: url)
        #expect(Self.message { _ = try Checkpoint.load(url, expect: .s32c(vocabSize: Tokenizer.vocabularySize)) }
            .contains("configuration 's32' does not match the expected 's32c'"))
        // the same tensors under a configuration that says "conv head" miss the convolution
        var g = try SafeTensorsFile(contentsOf: url)
        var cj = try #require(JSONSerialization.jsonObject(with: Data(g.metadata["config"]!.utf8)) as? [String: Any])
        cj["headChannels"] = 16
        g.metadata["config"] = String(data: try JSONSerialization.data(withJSONObject: cj), encoding: .utf8)!
        let lying = dir.appendingPathComponent("lying.safetensors")
        try g.serialized().write(to: lying)
        #expect(Self.message { _ = try Checkpoint.load(lying) }.contains("has shape"))
    }

    @Test func badCheckpointsAreClearErrors() throws {
        let dir = try Self.tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        let m = try DiT(config: .tiny(vocabSize: Tokenizer.vocabularySize), seed: 4)
        let url = dir.appendingPathComponent("m.safetensors")
        try Checkpoint.save(m, to: url)
        let good = try Data(contentsOf: url)

        // missing
        #expect(Self.message { _ = try Checkpoint.load(dir.appendingPathComponent("nope.safetensors")) }.contains("no such file"))
        // truncated
        let truncated = dir.appendingPathComponent("truncated.safetensors")
        try good.prefix(good.count - 100).write(to: truncated)
        #expect(Self.message { _ = try Checkpoint.load(truncated) }.contains("truncated"))
        try good.prefix(5).write(to: truncated)
        #expect(Self.message { _ = try Checkpoint.load(truncated) }.contains("truncated"))
        // corrupted data: the checksum catches it
        var bytes = [UInt8](good)
        bytes[bytes.count - 7] ^= 0x55
        let corrupted = dir.appendingPathComponent("corrupted.safetensors")
        try Data(bytes).write(to: corrupted)
        #expect(Self.message { _ = try Checkpoint.load(corrupted) }.contains("checksum"))
        // garbage header
        let garbage = dir.appendingPathComponent("garbage.safetensors")
        try Data([16, 0, 0, 0, 0, 0, 0, 0] + Array("not json at all!".utf8) + [1, 2, 3, 4]).write(to: garbage)
        #expect(Self.message { _ = try Checkpoint.load(garbage) }.contains("not a JSON object"))
        // a shape whose element count overflows (2^62 x 4 wraps to 0) with empty offsets
        let header = #"{"w": {"dtype": "F32", "shape": [4611686018427387904, 4], "data_offsets": [0, 0]}}"#
        var wrapped = withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { Data($0) }
        wrapped.append(Data(header.utf8))
        let wrappedURL = dir.appendingPathComponent("wrapped.safetensors")
        try wrapped.write(to: wrappedURL)
        #expect(Self.message { _ = try SafeTensorsFile(contentsOf: wrappedURL) }.contains("larger than the file"))
        // foreign dtype
        #expect(Self.message { _ = try SafeTensorsFile(contentsOf: Self.fixtures.appendingPathComponent("float16.safetensors")) }.contains("F16"))
        // another tokenizer's vocabulary or text length
        for other in [ModelConfig.tiny(vocabSize: 19), ModelConfig(name: "tiny", imageSize: 16, patch: 4, width: 32, depth: 1, heads: 2,
                                                                   vocabSize: Tokenizer.vocabularySize, freqDim: 32, textLength: 8)] {
            let foreign = dir.appendingPathComponent("foreign-\(other.vocabSize)-\(other.textLength).safetensors")
            try Checkpoint.save(try DiT(config: other), to: foreign)
            #expect(Self.message { _ = try Checkpoint.load(foreign) }.contains("the shapes grammar has"))
        }
        // mismatched configuration
        #expect(Self.message { _ = try Checkpoint.load(url, expect: .small(vocabSize: Tokenizer.vocabularySize)) }.contains("does not match"))
        // a tensor missing / with the wrong shape
        var f = try SafeTensorsFile(contentsOf: url)
        f.tensors["blocks.0.qkv.weight"] = nil
        f.order.removeAll { $0 == "blocks.0.qkv.weight" }
        let missing = dir.appendingPathComponent("missing.safetensors")
        try f.serialized().write(to: missing)
        #expect(Self.message { _ = try Checkpoint.load(missing) }.contains("'blocks.0.qkv.weight' is missing"))
        var g = try SafeTensorsFile(contentsOf: url)
        g.add("final.linear.bias", shape: [2, 3], values: [Float](repeating: 0, count: 6))
        let wrong = dir.appendingPathComponent("wrong.safetensors")
        try g.serialized().write(to: wrong)
        #expect(Self.message { _ = try Checkpoint.load(wrong) }.contains("has shape [2, 3]"))
    }
}
