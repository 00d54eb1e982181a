/// A batch of square images, channel-last (count, size, size, channels), values in [-1, 1]:
/// the pixels with their shape, so that no consumer has to be told the size separately.
public struct ImageBatch: Sendable {
    public var pixels: [Float]
    public let count: Int
    public let size: Int
    public let channels: Int

    public init(pixels: [Float], size: Int, channels: Int = 3) {
        precondition(size > 0 && channels > 0 && pixels.count % (size * size * channels) == 0,
                     "ImageBatch: \(pixels.count) values are not whole \(size)x\(size)x\(channels) images")
        self.pixels = pixels; self.size = size; self.channels = channels
        count = pixels.count / (size * size * channels)
    }

    /// Images of one size given one by one.
    public init(images: [[Float]], size: Int, channels: Int = 3) {
        self.init(pixels: images.flatMap { $0 }, size: size, channels: channels)
        precondition(images.allSatisfy { $0.count == size * size * channels }, "ImageBatch: images of different sizes")
    }

    public var valuesPerImage: Int { size * size * channels }
    public subscript(i: Int) -> ArraySlice<Float> { pixels[(i * valuesPerImage)..<((i + 1) * valuesPerImage)] }
    public func image(_ i: Int) -> [Float] { Array(self[i]) }
    public var images: [[Float]] { (0..<count).map(image) }
}
