import Imaging
import Shapes

/// A reward model: a batch of images (each (S, S, 3) in [-1, 1]) and their prompts in, one
/// value per image out. Every scorer can also serve as an evaluation metric.
public protocol RewardScorer: AnyObject {
    var name: String { get }
    /// Whether it reads a prompt's meaning in the shapes grammar or its shapes token ids (then a
    /// model trained on a folder of images cannot use it).
    var readsShapesPrompts: Bool { get }
    func score(_ images: ImageBatch, prompts: [Prompt]) throws -> [Float]
}

extension RewardScorer {
    public var readsShapesPrompts: Bool { false }
}

public struct RewardError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Mean pixel value in [0, 1].
public final class BrightnessScorer: RewardScorer {
    public let name = "brightness"
    public init() {}
    public func score(_ images: ImageBatch, prompts: [Prompt]) throws -> [Float] {
        (0..<images.count).map { i in images[i].reduce(0) { $0 + ($1.clamped(-1, 1) + 1) / 2 } / Float(images.valuesPerImage) }
    }
}

/// Mean HSV saturation (max - min) / max over pixels, in [0, 1].
public final class SaturationScorer: RewardScorer {
    public let name = "saturation"
    public init() {}
    public func score(_ images: ImageBatch, prompts: [Prompt]) throws -> [Float] {
        images.images.map { img in
            var s: Float = 0
            let n = img.count / 3
            for p in 0..<n {
                let r = (img[3 * p].clamped(-1, 1) + 1) / 2, g = (img[3 * p + 1].clamped(-1, 1) + 1) / 2, b = (img[3 * p + 2].clamped(-1, 1) + 1) / 2
                let mx = max(r, g, b), mn = min(r, g, b)
                s += mx > 0 ? (mx - mn) / mx : 0
            }
            return s / Float(n)
        }
    }
}

/// The rule-based checker's GenEval-style score in [0, 1] (`shape-eval`: the fraction of
/// requirements met), or (`shape-soft`) the mean of its requirements' margin scores: the same
/// checks, scored by how far each image is from each threshold, so that a group's samples
/// spread on it where they all pass or all fail; or (`shape-eval-strict`) the fraction met of the
/// strict checker's requirements, which add that nothing but the asked objects is drawn.
public final class ShapeEvalScorer: RewardScorer {
    public enum Variant: String, Sendable { case eval = "shape-eval", soft = "shape-soft", strict = "shape-eval-strict" }
    public let name: String
    let variant: Variant
    public let readsShapesPrompts = true
    public init(_ variant: Variant = .eval) { self.variant = variant; name = variant.rawValue }
    public func score(_ images: ImageBatch, prompts: [Prompt]) throws -> [Float] {
        let checker = Checker(size: images.size, strict: variant == .strict)
        return try zip(images.images, prompts).map { img, prompt in
            let r = checker.check(img, spec: try prompt.shapesSpec(for: name))
            return variant == .soft ? r.softScore : r.score
        }
    }
}

/// JPEG file size at quality 95 in kB (DDPO's convention): compressibility = -kB, incompressibility = +kB.
public final class JPEGScorer: RewardScorer {
    public let name: String
    let sign: Float
    public let quality = 95
    public init(compressible: Bool) {
        name = compressible ? "jpeg-compressibility" : "jpeg-incompressibility"
        sign = compressible ? -1 : 1
    }
    public func score(_ images: ImageBatch, prompts: [Prompt]) throws -> [Float] {
        try images.images.map { img in
            let bytes = try RGBImage(signedUnit: img, width: images.size, height: images.size).jpegData(quality: quality).count
            return sign * Float(bytes) / 1000
        }
    }
}

extension Float {
    @inline(__always) func clamped(_ lo: Float, _ hi: Float) -> Float { Swift.max(lo, Swift.min(hi, self)) }
}
