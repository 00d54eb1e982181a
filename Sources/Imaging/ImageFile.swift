import CImageIO

/// An 8-bit image with straight (not premultiplied) alpha, row-major (H, W, 4): what a PNG or
/// JPEG file decodes to (a JPEG's alpha is 255).
public struct RGBAImage: Equatable, Sendable {
    public let width: Int
    public let height: Int
    public var pixels: [UInt8]           // (H, W, 4)

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * 4, "RGBAImage: \(pixels.count) bytes for \(width)x\(height)")
        self.width = width; self.height = height; self.pixels = pixels
    }

    /// The largest image decoded (64 megapixels): a bigger one, or a file claiming to be, is
    /// refused before its pixels are allocated.
    public static let maxPixels = 64 << 20

    /// Decodes PNG (any colour type and bit depth: grey, palette, RGB, with alpha, 16-bit) or
    /// JPEG (grey or colour) bytes, told apart by their signature.
    public init(fileData data: [UInt8]) throws {
        var out: UnsafeMutablePointer<UInt8>? = nil
        var w: Int32 = 0, h: Int32 = 0
        var err = [CChar](repeating: 0, count: 256)
        if data.starts(with: [0x89, 0x50, 0x4E, 0x47]) {
            let rc = data.withUnsafeBufferPointer { p in ft_png_decode_rgba(p.baseAddress, p.count, Self.maxPixels, &out, &w, &h, &err, err.count) }
            guard rc == 0, let out else { throw ImageCodecError(description: "not a readable PNG (\(String(cString: err)))") }
            defer { ft_free(out) }
            self.init(width: Int(w), height: Int(h), pixels: Array(UnsafeBufferPointer(start: out, count: Int(w) * Int(h) * 4)))
        } else if data.starts(with: [0xFF, 0xD8]) {
            let rc = data.withUnsafeBufferPointer { p in ft_jpeg_decode_rgb(p.baseAddress, p.count, Self.maxPixels, &out, &w, &h, &err, err.count) }
            guard rc == 0, let out else { throw ImageCodecError(description: "not a readable JPEG (\(String(cString: err)))") }
            defer { ft_free(out) }
            let n = Int(w) * Int(h)
            var p = [UInt8](repeating: 255, count: n * 4)
            for i in 0..<n { p[4 * i] = out[3 * i]; p[4 * i + 1] = out[3 * i + 1]; p[4 * i + 2] = out[3 * i + 2] }
            self.init(width: Int(w), height: Int(h), pixels: p)
        } else {
            throw ImageCodecError(description: "neither a PNG nor a JPEG (the file does not start with either's signature)")
        }
    }

    /// The image composited over an opaque background colour, as RGB values in 0...255:
    /// out = a * colour + (1 - a) * background, per channel on the stored (sRGB) values.
    public func composited(over background: (UInt8, UInt8, UInt8)) -> [Float] {
        let bg = [Float(background.0), Float(background.1), Float(background.2)]
        var out = [Float](repeating: 0, count: width * height * 3)
        for i in 0..<(width * height) {
            let a = Float(pixels[4 * i + 3]) / 255
            for c in 0..<3 { out[3 * i + c] = a * Float(pixels[4 * i + c]) + (1 - a) * bg[c] }
        }
        return out
    }
}

/// The centred square of an (H, W, 3) image (side min(W, H), offset by half the difference,
/// rounded down) resampled to `size` x `size` with an area filter: each output pixel is the
/// mean of the source it covers, partly covered source pixels weighted by the part (box
/// filter at the exact scale; enlarging repeats or blends neighbouring pixels).
public func centreCropAreaResize(_ rgb: [Float], width: Int, height: Int, to size: Int) -> [Float] {
    precondition(rgb.count == width * height * 3 && size > 0 && width > 0 && height > 0)
    let side = min(width, height), x0 = (width - side) / 2, y0 = (height - side) / 2
    let taps = areaTaps(source: side, target: size)
    // rows first: (side rows, size columns), then columns
    var rows = [Float](repeating: 0, count: side * size * 3)
    for y in 0..<side {
        let src = (y + y0) * width
        for (x, row) in taps.enumerated() {
            var acc: (Float, Float, Float) = (0, 0, 0)
            for (i, w) in row {
                let p = (src + x0 + i) * 3
                acc.0 += w * rgb[p]; acc.1 += w * rgb[p + 1]; acc.2 += w * rgb[p + 2]
            }
            let o = (y * size + x) * 3
            rows[o] = acc.0; rows[o + 1] = acc.1; rows[o + 2] = acc.2
        }
    }
    var out = [Float](repeating: 0, count: size * size * 3)
    for (y, col) in taps.enumerated() {
        for x in 0..<size {
            var acc: (Float, Float, Float) = (0, 0, 0)
            for (i, w) in col {
                let p = (i * size + x) * 3
                acc.0 += w * rows[p]; acc.1 += w * rows[p + 1]; acc.2 += w * rows[p + 2]
            }
            let o = (y * size + x) * 3
            out[o] = acc.0; out[o + 1] = acc.1; out[o + 2] = acc.2
        }
    }
    return out
}

/// For each of `target` output cells along one axis, the source pixels it covers and the share
/// of the cell each covers (the shares sum to 1).
func areaTaps(source: Int, target: Int) -> [[(Int, Float)]] {
    let scale = Double(source) / Double(target)
    return (0..<target).map { o in
        let lo = Double(o) * scale, hi = Double(o + 1) * scale
        var taps: [(Int, Float)] = []
        var i = Int(lo.rounded(.down))
        while Double(i) < hi && i < source {
            let cover = min(hi, Double(i + 1)) - max(lo, Double(i))
            if cover > 1e-12 { taps.append((i, Float(cover / scale))) }
            i += 1
        }
        return taps
    }
}
