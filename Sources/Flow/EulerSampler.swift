import Tensor
import Model

/// Time grid t_0 = 1 > t_1 > ... > t_N = 0 with SD3's shift: t = m s / (1 + (m - 1) s), s = 1 - k/N.
public func timeGrid(steps: Int, shift: Float = 1) -> [Float] {
    (0...steps).map { k in
        let s = 1 - Float(k) / Float(steps)
        return shift * s / (1 + (shift - 1) * s)
    }
}

/// A velocity field v(x, t) over a batch of states at one time: the network (with or without
/// classifier-free guidance, `ModelVelocity`) or any function (`ClosureVelocity`, for tests).
public protocol VelocityField: AnyObject {
    /// v (B, n) for the states x (B, n) at time t; the buffer stays valid until the next call.
    func velocity(_ x: UnsafePointer<Float>, t: Float, batch: Int) -> UnsafePointer<Float>
}

/// One Euler step of the ODE dx/dt = v from t to t - h: out = x - h v (out may be x).
@inline(__always)
public func eulerStep(_ out: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, v: UnsafePointer<Float>, h: Float, count: Int) {
    for i in 0..<count { out[i] = x[i] - h * v[i] }
}

/// Classifier-free guidance: v = v(null) + w (v(prompt) - v(null)), written into `out`.
@inline(__always)
public func guidedVelocity(_ out: UnsafeMutablePointer<Float>, conditional: UnsafePointer<Float>, null: UnsafePointer<Float>,
                           scale w: Float, count: Int) {
    for i in 0..<count { out[i] = null[i] + w * (conditional[i] - null[i]) }
}

/// The Euler ODE sampler from t = 1 (noise) to t = 0 (data): x <- x - h v(x, t).
public struct EulerSampler: Sendable {
    public var steps: Int = 20
    public var cfgScale: Float = 1
    public var shift: Float = 1
    public init(steps: Int = 20, cfgScale: Float = 1, shift: Float = 1) {
        self.steps = steps; self.cfgScale = cfgScale; self.shift = shift
    }

    /// Integrates `x` (B, n) in place through `field`. `observe(k, t, x, v)` is called at every
    /// step with the state before the step and the velocity the step uses.
    public func sample(_ field: VelocityField, x: inout [Float], batch B: Int,
                       observe: ((Int, Float, [Float], UnsafePointer<Float>) -> Void)? = nil) {
        let grid = timeGrid(steps: steps, shift: shift)
        for k in 0..<steps {
            let t = grid[k], h = grid[k] - grid[k + 1]
            let v = x.withUnsafeBufferPointer { field.velocity($0.baseAddress!, t: t, batch: B) }
            observe?(k, t, x, v)
            x.withUnsafeMutableBufferPointer { eulerStep($0.baseAddress!, x: $0.baseAddress!, v: v, h: h, count: $0.count) }
        }
    }

    /// Integrates `noise` (B, S, S, C) in place to images with the network, conditioned on
    /// `tokens` (B, L) and guided with `cfgScale`. `ws` must hold 2B samples when cfgScale != 1.
    public func sample(model: DiT, ws: Workspace, x: inout [Float], tokens: [Int32],
                       observe: ((Int, Float, [Float], UnsafePointer<Float>) -> Void)? = nil) {
        let B = x.count / model.config.pixelsPerImage
        sample(ModelVelocity(model: model, ws: ws, tokens: tokens, cfgScale: cfgScale), x: &x, batch: B, observe: observe)
    }
}

/// The network as a velocity field for fixed prompts. With a guidance scale w != 1 the prompt
/// and the NULL prompt are evaluated in one batch of 2B and combined by `guidedVelocity`.
public final class ModelVelocity: VelocityField {
    let model: DiT, ws: Workspace, tokens: [Int32], cfgScale: Float
    var xin: [Float], tt: [Float]          // the network's batch: the states (twice when guided) and their times
    let guided: FloatBuffer

    public init(model: DiT, ws: Workspace, tokens: [Int32], cfgScale: Float = 1) {
        let B = tokens.count / model.config.textLength
        precondition(ws.batch >= (cfgScale == 1 ? B : 2 * B), "ModelVelocity: workspace too small")
        self.model = model; self.ws = ws; self.cfgScale = cfgScale
        self.tokens = cfgScale == 1 ? tokens : tokens + (0..<B).flatMap { _ in model.config.nullTokens }
        guided = FloatBuffer(count: cfgScale == 1 ? 0 : B * model.config.pixelsPerImage)
        let NB = cfgScale == 1 ? B : 2 * B
        xin = [Float](repeating: 0, count: NB * model.config.pixelsPerImage)
        tt = [Float](repeating: 0, count: NB)
    }

    public func velocity(_ x: UnsafePointer<Float>, t: Float, batch B: Int) -> UnsafePointer<Float> {
        let n = B * model.config.pixelsPerImage, NB = cfgScale == 1 ? B : 2 * B
        precondition(NB * model.config.pixelsPerImage <= xin.count, "ModelVelocity: batch \(B) exceeds its prompts")
        for i in 0..<n { xin[i] = x[i] }
        if cfgScale != 1 { for i in 0..<n { xin[n + i] = x[i] } }
        for b in 0..<NB { tt[b] = t }
        let v = model.forward(ws, x: xin, t: tt, tokens: tokens, batch: NB)
        guard cfgScale != 1 else { return UnsafePointer(v) }
        guidedVelocity(guided.pointer, conditional: v, null: v + n, scale: cfgScale, count: n)
        return UnsafePointer(guided.pointer)
    }
}

/// A velocity field given by a function of (x, t) on whole arrays (tests, closed forms).
public final class ClosureVelocity: VelocityField {
    let body: ([Float], Float) -> [Float]
    let pixels: Int
    var out = FloatBuffer(count: 0)
    public init(pixels: Int, _ body: @escaping ([Float], Float) -> [Float]) { self.pixels = pixels; self.body = body }
    public func velocity(_ x: UnsafePointer<Float>, t: Float, batch B: Int) -> UnsafePointer<Float> {
        let v = body(Array(UnsafeBufferPointer(start: x, count: B * pixels)), t)
        precondition(v.count == B * pixels, "ClosureVelocity: the function returned \(v.count) values for \(B * pixels)")
        out = FloatBuffer(v)
        return UnsafePointer(out.pointer)
    }
}
