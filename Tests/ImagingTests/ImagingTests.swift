import Testing
import Foundation
import Tensor
@testable import Imaging

@Suite struct ImagingTests {
    /// Rectangles and text partly or wholly outside the image are clipped (a label past the right
    /// edge once formed a backwards range, which the release build looped over).
    @Test func drawingOutsideTheImageIsClipped() {
        var img = RGBImage(width: 10, height: 8, fill: (255, 255, 255))
        img.fillRect(x: 12, y: 2, width: 3, height: 3, (0, 0, 0))
        img.fillRect(x: -5, y: -5, width: 3, height: 3, (0, 0, 0))
        img.fillRect(x: 2, y: 9, width: 3, height: 3, (0, 0, 0))
        img.drawText("1.0e+04", x: 8, y: 1)
        img.drawText("far", x: 40, y: 40)
        img.fillRect(x: 8, y: 6, width: 5, height: 5, (0, 0, 0))     // partly inside: 2 x 2 pixels
        var dark = 0
        for y in 0..<8 { for x in 0..<10 where img.pixel(x, y).0 == 0 { dark += 1 } }
        #expect(dark >= 4)
        #expect(img.pixel(0, 0).0 == 255)
    }

    static func noise(_ w: Int, _ h: Int, seed: UInt64) -> RGBImage {
        var rng = RNG(seed: seed)
        return RGBImage(width: w, height: h, pixels: (0..<(w * h * 3)).map { _ in UInt8(rng.int(256)) })
    }

    @Test func pngRoundTripIsExact() throws {
        let img = Self.noise(37, 23, seed: 1)
        let png = try img.pngData()
        #expect(Array(png.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        #expect(try RGBImage(pngData: png) == img)
    }

    @Test func pngDecodeRejectsGarbage() {
        #expect(throws: ImageCodecError.self) { try RGBImage(pngData: [1, 2, 3, 4, 5]) }
        var png = try! Self.noise(8, 8, seed: 2).pngData()
        png.removeLast(20)   // truncated
        #expect(throws: ImageCodecError.self) { try RGBImage(pngData: png) }
    }

    @Test func jpegSizeGrowsWithQualityAndDetail() throws {
        let detailed = Self.noise(32, 32, seed: 3)
        let flat = RGBImage(width: 32, height: 32, fill: (120, 30, 200))
        let q50 = try detailed.jpegData(quality: 50).count, q95 = try detailed.jpegData(quality: 95).count
        #expect(q95 > q50)
        let detailedSize = try detailed.jpegData(quality: 95).count, flatSize = try flat.jpegData(quality: 95).count
        #expect(detailedSize > 2 * flatSize, "detailed \(detailedSize) flat \(flatSize)")
        let jpeg = try flat.jpegData(quality: 95)
        #expect(jpeg.prefix(2) == [0xFF, 0xD8])
        #expect(throws: ImageCodecError.self) { try flat.jpegData(quality: 0) }
    }

    @Test func signedUnitConversionRoundTrips() {
        let img = Self.noise(4, 4, seed: 4)
        #expect(RGBImage(signedUnit: img.signedUnit, width: 4, height: 4) == img)
        let clamped = RGBImage(signedUnit: [-3, 5, 0] + [Float](repeating: 0, count: 45), width: 4, height: 4)
        #expect(clamped.pixels[0] == 0 && clamped.pixels[1] == 255 && clamped.pixels[2] == 128)
    }

    /// The font's test sheet: every glyph differs from every other one, only g, j, p, q and y
    /// (and the comma's tail) reach below the baseline, and the descenders really are drawn.
    @Test func everyGlyphIsDistinctAndOnlyDescendersGoBelowTheBaseline() {
        let chars = BitmapFont.characters
        // the captions' alphabet: prompts, scorer names, chart titles and tick labels
        for c in "abcdefghijklmnopqrstuvwxyz0123456789 .,:;-+=/()%_'" { #expect(chars.contains(c), "'\(c)' is not in the font") }
        var seen: [[UInt8]: Character] = [:]
        for c in chars {
            let g = BitmapFont.glyph(c)
            #expect(g.count == BitmapFont.glyphHeight)
            if c != " " { #expect(seen[g] == nil, "'\(c)' is drawn like '\(seen[g].map(String.init) ?? "")'") }
            seen[g] = c
            let below = g[7...].contains { $0 != 0 }
            #expect(below == "gjpqy,;".contains(c), "'\(c)'")
        }
        // drawn: "g" and "9" differ, and a caption's descenders land in the two rows below the baseline
        var img = RGBImage(width: BitmapFont.width("g9 jpqy"), height: BitmapFont.glyphHeight, fill: (255, 255, 255))
        img.drawText("g9 jpqy", x: 0, y: 0)
        func column(_ i: Int) -> [[UInt8]] { (0..<BitmapFont.glyphHeight).map { y in (0..<5).map { img.pixel(i * 6 + $0, y).0 } } }
        #expect(column(0) != column(1))
        for i in 3..<7 { #expect(column(i)[7...].contains { $0.contains(0) }, "glyph \(i)") }
    }

    @Test func tickLabelsAreShort() {
        #expect(formatTick(10_000) == "10k" && formatTick(12_500) == "12.5k" && formatTick(30_000) == "30k")
        #expect(formatTick(2_000_000) == "2M" && formatTick(-25_000) == "-25k")
        #expect(formatTick(250) == "250" && formatTick(12.5) == "12.5" && formatTick(0.25) == "0.25" && formatTick(0.004) == "4.0e-03")
    }

    @Test func ticksFallOnRoundValuesLabelledExactly() {
        let a = niceTicks(0.47, 0.66)
        #expect(a.values.map { formatTick($0, decimals: a.decimals) } == ["0.50", "0.55", "0.60", "0.65"])
        let b = niceTicks(-0.0015, 0.032)
        #expect(b.values.map { formatTick($0, decimals: b.decimals) } == ["0.00", "0.01", "0.02", "0.03"])
        let c = niceTicks(0, 6)
        #expect(c.values.map { formatTick($0, decimals: c.decimals) } == ["0", "2", "4", "6"])
        let d = niceTicks(0, 30_000)
        #expect(d.values.map { formatTick($0, decimals: d.decimals) } == ["0", "10k", "20k", "30k"])
        let e = niceTicks(1e-5, 5e-5)
        #expect(e.values.map { formatTick($0, decimals: e.decimals) } == ["1e-05", "2e-05", "3e-05", "4e-05", "5e-05"])
        #expect(niceTicks(1, 1).values == [1])
    }

    @Test func gridPlacesImagesAndCaptions() throws {
        let red = RGBImage(width: 8, height: 8, fill: (255, 0, 0)), blue = RGBImage(width: 8, height: 8, fill: (0, 0, 255))
        let grid = composeGrid(rows: [GridRow(caption: "first row", images: [red, blue]),
                                      GridRow(caption: "second", images: [blue], labels: ["0.50"])], scale: 2)
        // a red pixel inside the first cell, a blue one inside the second
        let line = BitmapFont.lineHeight
        #expect(grid.pixel(2 + 4, line + 2 + 4) == (255, 0, 0))
        #expect(grid.pixel(2 + 16 + 2 + 4, line + 2 + 4) == (0, 0, 255))
        // the caption strip has dark text pixels
        let strip = (0..<grid.width).flatMap { x in (0..<line).map { grid.pixel(x, $0) } }
        #expect(strip.contains { $0.0 < 60 && $0.1 < 60 && $0.2 < 60 })
        #expect(grid.width >= BitmapFont.width("first row"))
        let decoded = try RGBImage(pngData: try grid.pngData())
        #expect(decoded == grid)
    }

    @Test func lineChartDrawsSeriesAndMarker() {
        var chart = LineChart(title: "t", xLabel: "step", yLabel: "y")
        chart.series = [.init(name: "up", points: [(0, 0), (10, 1)], color: (255, 0, 0)),
                        .init(name: "down", points: [(0, 5), (10, -5)], color: (0, 0, 255))]
        chart.markers = [.init(x: 5, label: "onset")]
        let img = chart.render()
        let px = (0..<(img.width * img.height)).map { img.pixel($0 % img.width, $0 / img.width) }
        #expect(px.contains { $0 == (255, 0, 0) })
        #expect(px.contains { $0 == (0, 0, 255) })
        #expect(px.contains { $0 == (200, 0, 0) })
    }

    @Test func atomicWriteLeavesNoTemporaryFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ft-\(UUID().uuidString)")
        let url = dir.appendingPathComponent("a.txt")
        try writeAtomically("hello", to: url)
        try writeAtomically("world", to: url)
        #expect(try String(contentsOf: url, encoding: .utf8) == "world")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["a.txt"])
        try appendLine("{\"a\": 1}", to: dir.appendingPathComponent("m.jsonl"))
        try appendLine("{\"a\": 2}", to: dir.appendingPathComponent("m.jsonl"))
        #expect(try String(contentsOf: dir.appendingPathComponent("m.jsonl"), encoding: .utf8) == "{\"a\": 1}\n{\"a\": 2}\n")
        try? FileManager.default.removeItem(at: dir)
    }
}
