import Foundation

/// An object read back from an image: a connected region that differs from the background.
public struct DetectedObject: Sendable, CustomStringConvertible {
    public var color: ShapeColor
    public var shape: ShapeKind
    public var cx: Float, cy: Float      // centroid, pixels
    public var width: Int, height: Int   // bounding box of the thresholded region
    public var area: Int
    public var description: String { "\(color.rawValue) \(shape.rawValue) at (\(Int(cx)), \(Int(cy))) \(width)x\(height)" }
}

/// One requirement of a prompt and whether the image meets it.
public struct Requirement: Sendable, Codable, Equatable {
    public var name: String
    public var passed: Bool

    /// The name of the strict checker's requirement that nothing but the asked objects is drawn.
    public static let nothingElse = "no other objects"

    /// The kind of requirement: object, size, placement, count, relation, background, or (the
    /// strict checker's) extra.
    public var kind: String {
        if name == Self.nothingElse { return "extra" }
        if name.hasSuffix("present") { return "object" }
        if name.hasPrefix("size") { return "size" }
        if name.hasPrefix("at the") { return "placement" }
        if name.hasPrefix("exactly") { return "count" }
        if name.hasSuffix("background") { return "background" }
        return "relation"
    }
}

public struct CheckResult: Sendable {
    public var score: Float              // fraction of requirements met, in [0, 1]
    public var requirements: [Requirement]
    /// Each requirement's margin score in [0, 1], in the order of `requirements` (Checker.check).
    public var margins: [Float]
    /// The mean margin score: a dense version of `score` that also moves when no requirement
    /// flips (the `shape-soft` reward).
    public var softScore: Float { margins.isEmpty ? 0 : margins.reduce(0, +) / Float(margins.count) }
    public var objects: [DetectedObject]
    public var background: ShapeColor
    public var allCorrect: Bool { requirements.allSatisfy(\.passed) }
}

/// The rule-based checker: segments an image into objects (colour, shape, size, position) and
/// scores a prompt GenEval-style, with partial credit per requirement.
///
/// Segmentation: the background colour is the per-channel median of the border pixels; pixels
/// farther than `foregroundThreshold` from it form 4-connected regions; each region's colour is
/// the mean of its core (the pixels farthest from the background) mapped to the nearest palette
/// colour; its pixels at half-way or more from background to core form the shape mask. The
/// shape is the nearest prototype in (fill ratio, top-row width, bottom-row width) of the mask's
/// bounding box: square (1, 1, 1), circle (0.78, 0.45, 0.45), upright triangle (0.52, 0.15, 0.95).
public struct Checker: Sendable {
    public var size: Int
    public var foregroundThreshold: Float = 40    // RGB distance, 0...255 units
    public var minArea: Int                        // smaller regions are noise
    public var marginScale: Float = 1.5            // pixels (at 32 px) of the margin scores' logistic
    /// Also require that nothing but the asked objects is drawn (the requirement "no other
    /// objects"; margin 1 / (1 + the number of extra objects)). The lenient checker takes the
    /// best match of each asked object and ignores the rest, so extra copies cost nothing there.
    public var strict: Bool
    public init(size: Int = 32, strict: Bool = false) {
        self.size = size; self.strict = strict
        minArea = max(3, Int((6 * Float(size * size) / 1024).rounded()))
    }

    var k: Float { Float(size) / 32 }

    /// Scores `image` ((size, size, 3) in [-1, 1]) against `spec`. Besides pass or fail, each
    /// requirement gets a margin score in [0, 1] (`CheckResult.margins`): a logistic function of
    /// how far the image is from the requirement's threshold, in units of `marginScale` pixels
    /// (relations, placements, sizes: 0.5 at the threshold, above it when the requirement is met
    /// with room to spare); partial credit for an object of the asked colour but another shape
    /// (0.5) or of the asked shape but another colour (0.25); 1 - |n - count| / count for a
    /// count; 1 or 0 for the background.
    public func check(_ image: UnsafeBufferPointer<Float>, spec: PromptSpec) -> CheckResult {
        let (bgColor, objects) = detect(image)
        var reqs: [Requirement] = []
        var margins: [Float] = []
        var pool = objects
        let scale = marginScale * k
        func logistic(_ distance: Float) -> Float { 1 / (1 + expf(-distance / scale)) }
        func add(_ name: String, passed: Bool, margin: Float?) {
            reqs.append(Requirement(name: name, passed: passed)); margins.append(margin ?? 0)
        }
        /// A requirement that an object is there: met 1, else partial credit from the objects left.
        func present(_ o: ObjectSpec, found: Bool) {
            add("\(name(o)) present", passed: found,
                margin: found ? 1 : pool.contains { $0.color == o.color } ? 0.5 : pool.contains { $0.shape == o.shape } ? 0.25 : 0)
        }
        /// Takes the best object matching colour and shape out of the pool.
        func take(_ o: ObjectSpec) -> DetectedObject? {
            guard let idx = pool.indices.filter({ pool[$0].color == o.color && pool[$0].shape == o.shape })
                .max(by: { pool[$0].area < pool[$1].area }) else { return nil }
            return pool.remove(at: idx)
        }
        func name(_ o: ObjectSpec) -> String { "\(o.color.rawValue) \(o.shape.rawValue)" }
        switch spec.task {
        case .single:
            let o = spec.objects[0]
            let found = take(o)
            present(o, found: found != nil)
            if let size = o.size {
                // how far the extent is past 11.5 px (at 32 px) on the asked side
                let past = found.map { d in (Float(max(d.width, d.height)) - 11.5 * k) * (size == .large ? 1 : -1) }
                add("size \(size.rawValue)", passed: past.map { size == .large ? $0 >= 0 : $0 > 0 } ?? false, margin: past.map(logistic))
            }
            if let p = o.placement {
                add("at the \(p.rawValue)", passed: found.map { placed($0, p) } ?? false, margin: found.map { logistic(placement($0, p)) })
            }
        case .twoObjects:
            for o in spec.objects { present(o, found: take(o) != nil) }
        case .counting:
            let o = spec.objects[0]
            let n = objects.filter { $0.color == o.color && $0.shape == o.shape }.count
            present(o, found: n >= 1)                                  // (nothing taken: the pool is every object)
            if strict { pool.removeAll { $0.color == o.color && $0.shape == o.shape } }   // the counted ones are asked for
            add("exactly \(spec.count)", passed: n == spec.count, margin: max(0, 1 - Float(abs(n - spec.count)) / Float(spec.count)))
        case .position:
            let a = take(spec.objects[0]), b = take(spec.objects[1])
            present(spec.objects[0], found: a != nil)
            present(spec.objects[1], found: b != nil)
            // how far a is past b by more than the 2 px dead zone, in the asked direction
            var past: Float? = nil
            if let a, let b {
                let m = 2 * k
                switch spec.relation! {
                case .leftOf: past = b.cx - a.cx - m
                case .rightOf: past = a.cx - b.cx - m
                case .above: past = b.cy - a.cy - m
                case .below: past = a.cy - b.cy - m
                }
            }
            add(spec.relation!.rawValue, passed: past.map { $0 > 0 } ?? false, margin: past.map(logistic))
        }
        add("\(spec.background.rawValue) background", passed: bgColor == spec.background, margin: bgColor == spec.background ? 1 : 0)
        if strict { add(Requirement.nothingElse, passed: pool.isEmpty, margin: 1 / Float(1 + pool.count)) }
        let score = Float(reqs.filter(\.passed).count) / Float(reqs.count)
        return CheckResult(score: score, requirements: reqs, margins: margins, objects: objects, background: bgColor)
    }

    public func check(_ image: [Float], spec: PromptSpec) -> CheckResult {
        image.withUnsafeBufferPointer { check($0, spec: spec) }
    }

    /// How far inside placement `p` the object's centroid is, in pixels (negative: outside).
    func placement(_ d: DetectedObject, _ p: Placement) -> Float {
        let h = Float(size) / 2
        switch p {
        case .topLeft: return min(h - d.cx, h - d.cy)
        case .topRight: return min(d.cx - h, h - d.cy)
        case .bottomLeft: return min(h - d.cx, d.cy - h)
        case .bottomRight: return min(d.cx - h, d.cy - h)
        case .center: return 6 * k - max(abs(d.cx - h), abs(d.cy - h))
        }
    }

    func placed(_ d: DetectedObject, _ p: Placement) -> Bool {
        let h = Float(size) / 2
        switch p {
        case .topLeft: return d.cx < h && d.cy < h
        case .topRight: return d.cx >= h && d.cy < h
        case .bottomLeft: return d.cx < h && d.cy >= h
        case .bottomRight: return d.cx >= h && d.cy >= h
        case .center: return abs(d.cx - h) < 6 * k && abs(d.cy - h) < 6 * k
        }
    }

    /// Background colour and the objects found in `image`.
    public func detect(_ image: UnsafeBufferPointer<Float>) -> (ShapeColor, [DetectedObject]) {
        let S = size, n = S * S
        precondition(image.count == n * 3, "Checker: expected \(S)x\(S)x3 values, got \(image.count)")
        var px = [SIMD3<Float>](repeating: .zero, count: n)
        for i in 0..<n {
            px[i] = SIMD3(image[3 * i], image[3 * i + 1], image[3 * i + 2]).clamped(lowerBound: SIMD3(repeating: -1), upperBound: SIMD3(repeating: 1))
            px[i] = (px[i] + 1) * 127.5
        }
        // background: per-channel median of the border
        var border: [SIMD3<Float>] = []
        for x in 0..<S { border.append(px[x]); border.append(px[(S - 1) * S + x]) }
        for y in 1..<(S - 1) { border.append(px[y * S]); border.append(px[y * S + S - 1]) }
        var bg = SIMD3<Float>()
        for ch in 0..<3 {
            let v = border.map { $0[ch] }.sorted()
            bg[ch] = v[v.count / 2]
        }
        let dist = px.map { distance($0, bg) }
        // 4-connected regions of foreground pixels
        var label = [Int](repeating: -1, count: n)
        var objects: [DetectedObject] = []
        var stack: [Int] = []
        for seed in 0..<n where dist[seed] > foregroundThreshold && label[seed] < 0 {
            var region: [Int] = []
            label[seed] = seed
            stack.append(seed)
            while let p = stack.popLast() {
                region.append(p)
                let x = p % S, y = p / S
                for (nx, ny) in [(x - 1, y), (x + 1, y), (x, y - 1), (x, y + 1)] where nx >= 0 && ny >= 0 && nx < S && ny < S {
                    let q = ny * S + nx
                    if label[q] < 0 && dist[q] > foregroundThreshold { label[q] = seed; stack.append(q) }
                }
            }
            if let d = describe(region: region, px: px, dist: dist, bg: bg) { objects.append(d) }
        }
        return (ShapeColor.nearest(to: bg), objects)
    }

    func describe(region: [Int], px: [SIMD3<Float>], dist: [Float], bg: SIMD3<Float>) -> DetectedObject? {
        guard region.count >= minArea else { return nil }
        let S = size
        let maxD = region.map { dist[$0] }.max()!
        var core = SIMD3<Float>(), nCore: Float = 0
        for p in region where dist[p] >= 0.8 * maxD { core += px[p]; nCore += 1 }
        core /= nCore
        // shape mask: projection onto the background->core axis at least one half
        let axis = core - bg
        let axis2 = max((axis * axis).sum(), 1e-6)
        let mask = region.filter { (((px[$0] - bg) * axis).sum() / axis2) >= 0.5 }
        guard mask.count >= minArea else { return nil }
        var x0 = S, x1 = -1, y0 = S, y1 = -1
        var sx: Float = 0, sy: Float = 0
        for p in mask {
            let x = p % S, y = p / S
            x0 = min(x0, x); x1 = max(x1, x); y0 = min(y0, y); y1 = max(y1, y)
            sx += Float(x) + 0.5; sy += Float(y) + 0.5
        }
        let w = x1 - x0 + 1, h = y1 - y0 + 1
        var inMask = Set(mask)
        let top = (x0...x1).filter { inMask.contains(y0 * S + $0) }.count
        let bottom = (x0...x1).filter { inMask.contains(y1 * S + $0) }.count
        inMask.removeAll()
        let fill = Float(mask.count) / Float(w * h)
        let feat = SIMD3<Float>(fill, Float(top) / Float(w), Float(bottom) / Float(w))
        let prototypes: [(ShapeKind, SIMD3<Float>)] = [(.square, [1, 1, 1]), (.circle, [0.78, 0.45, 0.45]), (.triangle, [0.52, 0.15, 0.95])]
        let shape = prototypes.min { distance($0.1, feat) < distance($1.1, feat) }!.0
        return DetectedObject(color: .nearest(to: core), shape: shape, cx: sx / Float(mask.count), cy: sy / Float(mask.count),
                              width: w, height: h, area: mask.count)
    }
}
