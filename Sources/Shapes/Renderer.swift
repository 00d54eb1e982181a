import Tensor

/// One object as drawn: centre and radius in pixels, jittered colour in 0...255.
public struct PlacedObject: Sendable {
    public var shape: ShapeKind
    public var color: SIMD3<Float>
    public var cx: Float, cy: Float, r: Float
}

/// The procedural renderer: prompt -> anti-aliased image with jitter in size, position and hue.
///
/// Geometry is defined on a 32-pixel canvas and scaled to `size`. Objects are placed apart with
/// a gap of a few pixels, so that each one is a separate connected region; a layout that finds
/// no such placement in 500 random draws (very rare: the radii are small for the canvas) keeps
/// its last draw, whose objects may touch.
public struct Renderer: Sendable {
    public var size: Int                 // image side in pixels (32 for s32)
    public var supersample = 4           // samples per pixel side for anti-aliasing
    public var objectJitter: Float = 14  // per-channel colour jitter, 0...255 units
    public var backgroundJitter: Float = 10

    public init(size: Int = 32) { self.size = size }

    var k: Float { Float(size) / 32 }

    /// Renders `spec` to (size, size, 3) floats in [-1, 1], channel-last.
    public func render(_ spec: PromptSpec, rng: inout RNG) -> [Float] {
        let bg = jitter(spec.background.rgb, objectJitter: false, rng: &rng)
        let objects = layout(spec, rng: &rng)
        return rasterise(objects, background: bg)
    }

    /// Renders into `out` (size*size*3 floats).
    public func render(_ spec: PromptSpec, rng: inout RNG, into out: UnsafeMutablePointer<Float>) {
        let img = render(spec, rng: &rng)
        img.withUnsafeBufferPointer { out.update(from: $0.baseAddress!, count: img.count) }
    }

    func jitter(_ c: SIMD3<Float>, objectJitter isObject: Bool, rng: inout RNG) -> SIMD3<Float> {
        let j = isObject ? objectJitter : backgroundJitter
        var o = c
        for ch in 0..<3 { o[ch] = max(0, min(255, c[ch] + rng.uniform(-j, j))) }
        return o
    }

    /// Radius range (32-pixel units) for an object of a task.
    func radiusRange(_ spec: PromptSpec, _ o: ObjectSpec) -> ClosedRange<Float> {
        switch spec.task {
        case .single:
            switch o.size {
            case .small: return 3.6...4.4
            case .large: return 7.0...8.0
            case nil: return 4.8...6.4
            }
        case .twoObjects, .position: return 4.2...5.5
        case .counting: return 3.5...4.3
        }
    }

    /// Object centres and radii for `spec`, in pixels.
    public func layout(_ spec: PromptSpec, rng: inout RNG) -> [PlacedObject] {
        let S = Float(size)
        func radius(_ o: ObjectSpec) -> Float {
            let r = radiusRange(spec, o)
            return rng.uniform(r.lowerBound, r.upperBound) * k
        }
        func clampCentre(_ v: Float, _ r: Float) -> Float { max(r * 1.1 + 0.5, min(S - r * 1.1 - 0.5, v)) }
        func anywhere(_ r: Float) -> (Float, Float) {
            (rng.uniform(r * 1.1 + 0.5, S - r * 1.1 - 0.5), rng.uniform(r * 1.1 + 0.5, S - r * 1.1 - 0.5))
        }
        func separated(_ objs: [PlacedObject]) -> Bool {
            for a in 0..<objs.count {
                for b in (a + 1)..<objs.count {
                    let dx = objs[a].cx - objs[b].cx, dy = objs[a].cy - objs[b].cy
                    if (dx * dx + dy * dy).squareRoot() < 1.25 * (objs[a].r + objs[b].r) + 2 * k { return false }
                }
            }
            return true
        }
        func placed(_ o: ObjectSpec, _ r: Float, _ c: (Float, Float)) -> PlacedObject {
            PlacedObject(shape: o.shape, color: jitter(o.color.rgb, objectJitter: true, rng: &rng), cx: c.0, cy: c.1, r: r)
        }

        switch spec.task {
        case .single:
            let o = spec.objects[0]
            let r = radius(o)
            var c = anywhere(r)
            if let p = o.placement {
                let (x, y): (Float, Float) = switch p {
                case .topLeft: (9, 9)
                case .topRight: (23, 9)
                case .bottomLeft: (9, 23)
                case .bottomRight: (23, 23)
                case .center: (16, 16)
                }
                c = (clampCentre((x + rng.uniform(-1.5, 1.5)) * k, r), clampCentre((y + rng.uniform(-1.5, 1.5)) * k, r))
            }
            return [placed(o, r, c)]
        case .twoObjects, .counting:
            let specs = spec.task == .counting ? Array(repeating: spec.objects[0], count: spec.count) : spec.objects
            let radii = specs.map { radius($0) }
            var best: [(Float, Float)] = []
            for _ in 0..<500 {
                let centres = radii.map { anywhere($0) }
                let objs = zip(specs, zip(radii, centres)).map { PlacedObject(shape: $0.shape, color: .zero, cx: $1.1.0, cy: $1.1.1, r: $1.0) }
                best = centres
                if separated(objs) { break }
            }
            return zip(specs, zip(radii, best)).map { placed($0, $1.0, $1.1) }
        case .position:
            let (a, b) = (spec.objects[0], spec.objects[1])
            let ra = radius(a), rb = radius(b)
            // Along the relation's axis: A before B (left/above) by 11...18 px (32 scale);
            // across it: a small offset, so the relation is unambiguous.
            let first = spec.relation == .leftOf || spec.relation == .above
            let horizontal = spec.relation == .leftOf || spec.relation == .rightOf
            let gap = rng.uniform(12, 18) * k
            let lo = max(ra, rb) * 1.1 + 0.5
            let along0 = rng.uniform(lo, max(lo, S - lo - gap))
            let across = rng.uniform(lo, S - lo)
            let dAcross = rng.uniform(-3.5, 3.5) * k
            var ca = (along0, across), cb = (along0 + gap, max(lo, min(S - lo, across + dAcross)))
            if !first { swap(&ca, &cb) }
            if !horizontal { ca = (ca.1, ca.0); cb = (cb.1, cb.0) }
            return [placed(a, ra, ca), placed(b, rb, cb)]
        }
    }

    /// Point-in-shape test in pixel coordinates.
    @inline(__always)
    static func inside(_ o: PlacedObject, _ x: Float, _ y: Float) -> Bool {
        let dx = x - o.cx, dy = y - o.cy
        switch o.shape {
        case .circle: return dx * dx + dy * dy <= o.r * o.r
        case .square: let a = 0.88 * o.r; return abs(dx) <= a && abs(dy) <= a
        case .triangle:
            // upright isosceles: apex at cy - 0.95 r, base at cy + 0.85 r, half base r
            let ya = o.cy - 0.95 * o.r, yb = o.cy + 0.85 * o.r
            guard y >= ya, y <= yb else { return false }
            return abs(dx) <= o.r * (y - ya) / (yb - ya)
        }
    }

    /// Draws objects over a flat background with `supersample`^2 coverage samples per pixel.
    public func rasterise(_ objects: [PlacedObject], background: SIMD3<Float>) -> [Float] {
        let S = size, ss = supersample
        var out = [Float](repeating: 0, count: S * S * 3)
        let inv = 1 / Float(ss * ss)
        for y in 0..<S {
            for x in 0..<S {
                var c = background
                for o in objects {
                    // quick reject on the bounding box
                    let ext = o.r * 1.3 + 1
                    if abs(Float(x) + 0.5 - o.cx) > ext || abs(Float(y) + 0.5 - o.cy) > ext { continue }
                    var hits = 0
                    for sy in 0..<ss {
                        for sx in 0..<ss {
                            let px = Float(x) + (Float(sx) + 0.5) / Float(ss)
                            let py = Float(y) + (Float(sy) + 0.5) / Float(ss)
                            if Renderer.inside(o, px, py) { hits += 1 }
                        }
                    }
                    let cov = Float(hits) * inv
                    c = c * (1 - cov) + o.color * cov
                }
                let i = (y * S + x) * 3
                out[i] = c.x / 127.5 - 1; out[i + 1] = c.y / 127.5 - 1; out[i + 2] = c.z / 127.5 - 1
            }
        }
        return out
    }
}
