import Tensor
import Model
import Shapes

/// Time grid t_0 = 1 > t_1 > ... > t_N = 0 with SD3's shift: t = m s / (1 + (m - 1) s), s = 1 - k/N.
public func timeGrid(steps: Int, shift: Float = 1) -> [Float] {
    (0...steps).map { k in
        let s = 1 - Float(k) / Float(steps)
        return shift * s / (1 + (shift - 1) * s)
    }
}

/// The Euler ODE sampler from t = 1 (noise) to t = 0 (data): x <- x - h v, with optional
/// classifier-free guidance v = v(null) + w (v(c) - v(null)); w = 1 means one evaluation.
public struct EulerSampler {
    public var steps: Int = 20
    public var cfgScale: Float = 1
    public var shift: Float = 1
    public init(steps: Int = 20, cfgScale: Float = 1, shift: Float = 1) {
        self.steps = steps; self.cfgScale = cfgScale; self.shift = shift
    }

    /// Integrates `noise` (B, S, S, C) in place to images, conditioned on `tokens` (B, L).
    /// `ws` must hold 2B samples when cfgScale != 1 (conditional and NULL passes are batched).
    /// `observe(k, t, x, v)` is called at every step with the state and the (guided) velocity.
    public func sample(model: DiT, ws: Workspace, x: inout [Float], tokens: [Int32],
                       observe: ((Int, Float, [Float], UnsafePointer<Float>) -> Void)? = nil) {
        let c = model.config, n = c.pixelsPerImage
        let B = x.count / n
        let guided = cfgScale != 1
        let NB = guided ? 2 * B : B
        precondition(ws.batch >= NB, "EulerSampler: workspace too small")
        var toks = tokens
        if guided { toks += (0..<B).flatMap { _ in Tokenizer.nullTokens } }
        var xin = [Float](repeating: 0, count: NB * n)
        var tt = [Float](repeating: 0, count: NB)
        let grid = timeGrid(steps: steps, shift: shift)
        for k in 0..<steps {
            let t = grid[k], h = grid[k] - grid[k + 1]
            for i in 0..<(B * n) { xin[i] = x[i] }
            if guided { for i in 0..<(B * n) { xin[B * n + i] = x[i] } }
            for b in 0..<NB { tt[b] = t }
            let v = xin.withUnsafeBufferPointer { xp in
                tt.withUnsafeBufferPointer { tp in
                    toks.withUnsafeBufferPointer { kp in
                        model.forward(ws, x: xp.baseAddress!, t: tp.baseAddress!, tokens: kp.baseAddress!, batch: NB)
                    }
                }
            }
            if let observe, !guided { observe(k, t, x, v) }
            if guided {
                let w = cfgScale
                for i in 0..<(B * n) { x[i] -= h * (v[B * n + i] + w * (v[i] - v[B * n + i])) }
            } else {
                for i in 0..<(B * n) { x[i] -= h * v[i] }
            }
        }
    }
}

/// Euler integration of an arbitrary velocity field v(x, t) (used to test the sampler's order).
public func eulerIntegrate(_ x: inout [Float], steps: Int, shift: Float = 1, velocity: ([Float], Float) -> [Float]) {
    let grid = timeGrid(steps: steps, shift: shift)
    for k in 0..<steps {
        let v = velocity(x, grid[k])
        let h = grid[k] - grid[k + 1]
        for i in x.indices { x[i] -= h * v[i] }
    }
}
