import CImageIO

/// An 8-bit RGB image, row-major (H, W, 3).
public struct RGBImage: Equatable, Sendable {
    public let width: Int
    public let height: Int
    public var pixels: [UInt8]           // (H, W, 3)

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * 3, "RGBImage: \(pixels.count) bytes for \(width)x\(height)")
        self.width = width; self.height = height; self.pixels = pixels
    }
    public init(width: Int, height: Int, fill: (UInt8, UInt8, UInt8) = (255, 255, 255)) {
        var p = [UInt8](repeating: 0, count: width * height * 3)
        for i in 0..<(width * height) { p[3 * i] = fill.0; p[3 * i + 1] = fill.1; p[3 * i + 2] = fill.2 }
        self.init(width: width, height: height, pixels: p)
    }

    /// From floats in [-1, 1] (the model's range), channel-last (H, W, 3); values are clamped.
    public init(signedUnit values: UnsafeBufferPointer<Float>, width: Int, height: Int) {
        precondition(values.count == width * height * 3)
        var p = [UInt8](repeating: 0, count: values.count)
        for i in 0..<values.count {
            let v = (values[i] + 1) * 127.5
            p[i] = UInt8(max(0, min(255, v.rounded())))
        }
        self.init(width: width, height: height, pixels: p)
    }
    public init(signedUnit values: [Float], width: Int, height: Int) {
        self = values.withUnsafeBufferPointer { RGBImage(signedUnit: $0, width: width, height: height) }
    }

    /// Pixel values mapped to [-1, 1], channel-last.
    public var signedUnit: [Float] { pixels.map { Float($0) / 127.5 - 1 } }

    @inline(__always)
    public func pixel(_ x: Int, _ y: Int) -> (UInt8, UInt8, UInt8) {
        let i = (y * width + x) * 3
        return (pixels[i], pixels[i + 1], pixels[i + 2])
    }
    @inline(__always)
    public mutating func setPixel(_ x: Int, _ y: Int, _ c: (UInt8, UInt8, UInt8)) {
        guard x >= 0, y >= 0, x < width, y < height else { return }
        let i = (y * width + x) * 3
        pixels[i] = c.0; pixels[i + 1] = c.1; pixels[i + 2] = c.2
    }

    /// Copies `other` with its top-left corner at (x, y), clipped to this image.
    public mutating func blit(_ other: RGBImage, x: Int, y: Int) {
        for yy in 0..<other.height {
            for xx in 0..<other.width { setPixel(x + xx, y + yy, other.pixel(xx, yy)) }
        }
    }

    /// The rectangle (x, y, w, h) of this image, clipped to it.
    public func cropped(x: Int, y: Int, width w: Int, height h: Int) -> RGBImage {
        let x0 = max(0, x), y0 = max(0, y), x1 = min(width, x + w), y1 = min(height, y + h)
        guard x0 < x1, y0 < y1 else { return RGBImage(width: 0, height: 0, pixels: []) }
        var p: [UInt8] = []
        p.reserveCapacity((x1 - x0) * (y1 - y0) * 3)
        for yy in y0..<y1 { p += pixels[((yy * width + x0) * 3)..<((yy * width + x1) * 3)] }
        return RGBImage(width: x1 - x0, height: y1 - y0, pixels: p)
    }

    /// Nearest-neighbour upscale by an integer factor.
    public func scaled(by k: Int) -> RGBImage {
        guard k > 1 else { return self }
        var out = RGBImage(width: width * k, height: height * k)
        for y in 0..<out.height { for x in 0..<out.width { out.setPixel(x, y, pixel(x / k, y / k)) } }
        return out
    }

    public mutating func fillRect(x: Int, y: Int, width w: Int, height h: Int, _ c: (UInt8, UInt8, UInt8)) {
        // clipped to the image (a rectangle wholly outside draws nothing; an empty range must not be
        // formed backwards: release builds do not check it)
        let y0 = max(0, y), y1 = min(height, y + h), x0 = max(0, x), x1 = min(width, x + w)
        guard y0 < y1, x0 < x1 else { return }
        for yy in y0..<y1 { for xx in x0..<x1 { setPixel(xx, yy, c) } }
    }
}

public struct ImageCodecError: Error, CustomStringConvertible {
    public let description: String
}

extension RGBImage {
    /// PNG bytes (libpng, 8-bit RGB).
    public func pngData() throws -> [UInt8] {
        var out: UnsafeMutablePointer<UInt8>? = nil
        var len = 0
        var err = [CChar](repeating: 0, count: 256)
        let rc = pixels.withUnsafeBufferPointer { p in
            ft_png_encode_rgb(p.baseAddress, Int32(width), Int32(height), &out, &len, &err, err.count)
        }
        guard rc == 0, let out else { throw ImageCodecError(description: "PNG encoding failed: \(String(cString: err))") }
        defer { ft_free(out) }
        return Array(UnsafeBufferPointer(start: out, count: len))
    }

    /// Decodes PNG bytes (any PNG colour type; converted to 8-bit RGB).
    public init(pngData data: [UInt8]) throws {
        var rgb: UnsafeMutablePointer<UInt8>? = nil
        var w: Int32 = 0, h: Int32 = 0
        var err = [CChar](repeating: 0, count: 256)
        let rc = data.withUnsafeBufferPointer { p in ft_png_decode_rgb(p.baseAddress, p.count, &rgb, &w, &h, &err, err.count) }
        guard rc == 0, let rgb else { throw ImageCodecError(description: "not a readable PNG: \(String(cString: err))") }
        defer { ft_free(rgb) }
        self.init(width: Int(w), height: Int(h), pixels: Array(UnsafeBufferPointer(start: rgb, count: Int(w) * Int(h) * 3)))
    }

    /// Baseline JPEG bytes at `quality` (1...100), through libjpeg.
    public func jpegData(quality: Int) throws -> [UInt8] {
        guard (1...100).contains(quality) else { throw ImageCodecError(description: "JPEG quality must be 1...100, got \(quality)") }
        var out: UnsafeMutablePointer<UInt8>? = nil
        var len = 0
        var err = [CChar](repeating: 0, count: 256)
        let rc = pixels.withUnsafeBufferPointer { p in
            ft_jpeg_encode_rgb(p.baseAddress, Int32(width), Int32(height), Int32(quality), &out, &len, &err, err.count)
        }
        guard rc == 0, let out else { throw ImageCodecError(description: "JPEG encoding failed: \(String(cString: err))") }
        defer { ft_free(out) }
        return Array(UnsafeBufferPointer(start: out, count: len))
    }
}
