import Testing
import TestSupport
import Foundation
import Analysis
import Tensor
import Imaging
import Shapes
import Dataset

/// A folder the tests make: PNG and JPEG of odd sizes, grey and RGBA, captions from .txt and
/// metadata.jsonl, and (when asked) one corrupt image and one without a caption.
@Suite struct ImageFolderTests {
    /// A reference area resize, written as the 2-D integral it is: each output pixel is the
    /// mean over its square of the piecewise-constant source (overlap areas computed per pair).
    func referenceResize(_ rgb: [Float], width: Int, height: Int, to S: Int) -> [Float] {
        let side = min(width, height), x0 = (width - side) / 2, y0 = (height - side) / 2
        let cell = Double(side) / Double(S)
        var out = [Float](repeating: 0, count: S * S * 3)
        for oy in 0..<S { for ox in 0..<S { for c in 0..<3 {
            var acc = 0.0
            for sy in 0..<side { for sx in 0..<side {
                let ox0 = max(Double(ox) * cell, Double(sx)), ox1 = min(Double(ox + 1) * cell, Double(sx + 1))
                let oy0 = max(Double(oy) * cell, Double(sy)), oy1 = min(Double(oy + 1) * cell, Double(sy + 1))
                if ox1 > ox0 && oy1 > oy0 { acc += (ox1 - ox0) * (oy1 - oy0) * Double(rgb[((sy + y0) * width + sx + x0) * 3 + c]) }
            } }
            out[(oy * S + ox) * 3 + c] = Float(acc / (cell * cell))
        } } }
        return out
    }

    @Test func areaResizeMatchesTheIntegral() throws {
        for (w, h, S) in [(37, 23, 8), (41, 41, 16), (9, 12, 4), (5, 7, 8), (64, 64, 16)] {
            var rng = RNG(seed: UInt64(w * h))
            let rgb = (0..<(w * h * 3)).map { _ in rng.uniform() * 255 }
            let got = centreCropAreaResize(rgb, width: w, height: h, to: S)
            let want = referenceResize(rgb, width: w, height: h, to: S)
            let worst = zip(got, want).map { abs($0 - $1) }.max()!
            #expect(worst < 1e-2, "\(w)x\(h) -> \(S): max difference \(worst)")
        }
        // an integer factor is the mean of each block
        let block = centreCropAreaResize([0, 0, 0, 100, 100, 100, 50, 50, 50, 250, 250, 250], width: 2, height: 2, to: 1)
        #expect(block == [100, 100, 100])
    }

    @Test func decodesEveryModeAndComposites() throws {
        let grey = try RGBAImage(fileData: TestFolder.greyPNG(side: 3, value: 90))
        #expect(grey.width == 3 && grey.pixels[0..<4] == [90, 90, 90, 255])
        let glass = try RGBAImage(fileData: TestFolder.rgbaPNG(side: 2, rgba: (0, 0, 255, 128)))
        let onWhite = glass.composited(over: (255, 255, 255))
        #expect(abs(onWhite[0] - 127) < 0.01 && abs(onWhite[2] - 255) < 0.01)
        // a palette PNG: index 0 red, 1 green; a 2x2 checkerboard
        let indexed = try RGBAImage(fileData: TestFolder.png(width: 2, height: 2, colorType: 3, rows: [[0, 1], [1, 0]], palette: [255, 0, 0, 0, 255, 0]))
        #expect(indexed.pixels == [255, 0, 0, 255, 0, 255, 0, 255, 0, 255, 0, 255, 255, 0, 0, 255])
        let jpeg = try RGBAImage(fileData: try TestFolder.gradient(width: 17, height: 9).jpegData(quality: 95))
        #expect(jpeg.width == 17 && jpeg.height == 9 && jpeg.pixels[3] == 255)
        #expect(throws: ImageCodecError.self) { try RGBAImage(fileData: [1, 2, 3, 4]) }
        let truncated = Array(try TestFolder.gradient(width: 64, height: 64).jpegData(quality: 90).prefix(300))
        #expect(throws: ImageCodecError.self) { try RGBAImage(fileData: truncated) }
    }

    @Test func loadsCachesAndRebuilds() throws {
        let f = try TestFolder()
        defer { f.remove() }
        let a = try ImageFolder(path: f.url.path, size: 8, background: (255, 255, 255))
        #expect(a.cacheNote == "built")
        #expect(a.entries.map(\.file) == ["blue-alpha.png", "photo.JPG", "red-wide.png", "sub/grey.png"])
        #expect(a.entries.map(\.caption) == ["blue glass", "a photo", "A red, wide thing!", "grey square"])
        // the loader's pixels are the reference resize of the decoded file, rounded
        let src = try RGBAImage(fileData: try TestFolder.gradient(width: 37, height: 23).pngData())
        let want = referenceResize(src.composited(over: (255, 255, 255)), width: 37, height: 23, to: 8)
        let got = a.pixels[(2 * 192)..<(3 * 192)].map(Float.init)
        #expect(zip(got, want).allSatisfy { abs($0 - $1) <= 0.51 })
        #expect(a.pixels[(3 * 192)..<(4 * 192)].allSatisfy { $0 == 90 })       // grey stays grey
        #expect(a.pixels[0] == 127 && a.pixels[2] == 255)                       // alpha over white
        // read again: from the cache, the same
        let b = try ImageFolder(path: f.url.path, size: 8, background: (255, 255, 255))
        #expect(b.cacheNote == "reused" && b.pixels == a.pixels && b.entries == a.entries)
        // another background is another cache
        let black = try ImageFolder(path: f.url.path, size: 8, background: (0, 0, 0))
        #expect(black.cacheNote == "built" && black.pixels[0] == 0 && black.pixels[2] == 128)
        // a changed caption: rebuilt
        try Data("a grey tile".utf8).write(to: f.url.appendingPathComponent("sub/grey.txt"))
        let c = try ImageFolder(path: f.url.path, size: 8, background: (255, 255, 255))
        #expect(c.cacheNote == "built" && c.entries[3].caption == "a grey tile")
        // a changed image: rebuilt, with its new pixels
        try f.write("sub/grey.png", TestFolder.greyPNG(side: 24, value: 200), caption: nil)
        let d = try ImageFolder(path: f.url.path, size: 8, background: (255, 255, 255))
        #expect(d.cacheNote == "built" && d.pixels[(3 * 192)..<(4 * 192)].allSatisfy { $0 == 200 })
        // a damaged cache is not trusted
        let cacheDir = f.url.appendingPathComponent(".flowtune-cache")
        for name in try FileManager.default.contentsOfDirectory(atPath: cacheDir.path) {
            let u = cacheDir.appendingPathComponent(name)
            var bytes = [UInt8](try Data(contentsOf: u))
            bytes[bytes.count - 1] ^= 0xFF
            try Data(bytes).write(to: u)
        }
        let e = try ImageFolder(path: f.url.path, size: 8, background: (255, 255, 255))
        #expect(e.cacheNote == "built" && e.pixels == d.pixels)
    }

    @Test func badFilesAreNamed() throws {
        let f = try TestFolder(bad: true)
        defer { f.remove() }
        do {
            _ = try ImageFolder(path: f.url.path, size: 8)
            Issue.record("a folder with bad files was read")
        } catch let e as DataError {
            let lines = e.description.split(separator: "\n")
            #expect(lines[0].contains("3 bad files") && lines[0].contains("--skip-bad"))
            #expect(lines.contains { $0.contains("broken.png") && $0.contains("not a readable PNG") })
            #expect(lines.contains { $0.contains("silent.png") && $0.contains("no caption") })
            #expect(lines.contains { $0.contains("empty.png") && $0.contains("empty") })
            #expect(lines.count == 4)
        }
        let skipped = try ImageFolder(path: f.url.path, size: 8, skipBad: true)
        #expect(skipped.count == 4 && skipped.problems.count == 3)
        let empty = FileManager.default.temporaryDirectory.appendingPathComponent("flowtune-empty-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: empty) }
        #expect(throws: DataError.self) { try ImageFolder(path: empty.path, size: 8) }
        #expect(throws: DataError.self) { try ImageFolder(path: empty.appendingPathComponent("nowhere").path, size: 8) }
    }

    @Test func splitIsSeededAndDisjoint() throws {
        let f = try TestFolder()
        defer { f.remove() }
        let d = try ImageFolder(path: f.url.path, size: 8)
        let (train, held) = try d.split(heldOutFraction: 0.25, seed: 3)
        #expect(held.count == 1 && train.count == 3 && Set(train).isDisjoint(with: held))
        #expect(try d.split(heldOutFraction: 0.25, seed: 3) == (train, held))
        #expect(throws: DataError.self) { try d.split(heldOutFraction: 0.99, seed: 0) }
    }

    @Test func vocabularyFromCaptions() throws {
        let v = WordVocabulary.build(captions: ["Flag: France", "flag: Wales", "grinning face", "face"], minCount: 2, maxLength: 16)
        #expect(v.words == ["face", "flag"] && v.textLength == 2 && v.size == 5)
        let (tokens, unknown, cut) = try v.encode("FLAG of   Spain!")
        #expect(tokens == [4, 2] && unknown == ["of"] && cut == 1)
        #expect(throws: PromptError.self) { try v.encode(" ,.; ") }
        let p = try Prompt("face flag", vocabulary: v)
        #expect(p.spec == nil && p.tokens == [3, 4])
        #expect(throws: PromptError.self) { try p.shapesSpec(for: "shape-eval") }
    }
}
