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

    /// The kind of requirement: object, size, placement, count, relation or background.
    public var kind: String {
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
    public init(size: Int = 32) {
        self.size = size
        minArea = max(3, Int((6 * Float(size * size) / 1024).rounded()))
    }

    var k: Float { Float(size) / 32 }

    /// Scores `image` ((size, size, 3) in [-1, 1]) against `spec`.
    public func check(_ image: UnsafeBufferPointer<Float>, spec: PromptSpec) -> CheckResult {
        let (bgColor, objects) = detect(image)
        var reqs: [Requirement] = []
        var pool = objects
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
            reqs.append(Requirement(name: "\(name(o)) present", passed: found != nil))
            if let size = o.size {
                let ok = found.map { d in
                    let extent = Float(max(d.width, d.height)) / k
                    return size == .large ? extent >= 11.5 : extent < 11.5
                } ?? false
                reqs.append(Requirement(name: "size \(size.rawValue)", passed: ok))
            }
            if let p = o.placement {
                reqs.append(Requirement(name: "at the \(p.rawValue)", passed: found.map { placed($0, p) } ?? false))
            }
        case .twoObjects:
            for o in spec.objects { reqs.append(Requirement(name: "\(name(o)) present", passed: take(o) != nil)) }
        case .counting:
            let o = spec.objects[0]
            let n = objects.filter { $0.color == o.color && $0.shape == o.shape }.count
            reqs.append(Requirement(name: "\(name(o)) present", passed: n >= 1))
            reqs.append(Requirement(name: "exactly \(spec.count)", passed: n == spec.count))
        case .position:
            let a = take(spec.objects[0]), b = take(spec.objects[1])
            reqs.append(Requirement(name: "\(name(spec.objects[0])) present", passed: a != nil))
            reqs.append(Requirement(name: "\(name(spec.objects[1])) present", passed: b != nil))
            var ok = false
            if let a, let b {
                let m = 2 * k
                switch spec.relation! {
                case .leftOf: ok = a.cx + m < b.cx
                case .rightOf: ok = a.cx > b.cx + m
                case .above: ok = a.cy + m < b.cy
                case .below: ok = a.cy > b.cy + m
                }
            }
            reqs.append(Requirement(name: spec.relation!.rawValue, passed: ok))
        }
        reqs.append(Requirement(name: "\(spec.background.rawValue) background", passed: bgColor == spec.background))
        let score = Float(reqs.filter(\.passed).count) / Float(reqs.count)
        return CheckResult(score: score, requirements: reqs, objects: objects, background: bgColor)
    }

    public func check(_ image: [Float], spec: PromptSpec) -> CheckResult {
        image.withUnsafeBufferPointer { check($0, spec: spec) }
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
