import Analysis
import Tensor
import Model
import Flow
import Shapes

/// Images from a model for prompts x seeds with the Euler ODE sampler.
/// Image j of prompt i starts from the noise of RNG(seed).split(i).split(j), so the same cell
/// gets the same noise in every call (grids are comparable across checkpoints).
public struct Generator {
    public var sampler: EulerSampler
    public var batch: Int              // images per network batch
    public init(sampler: EulerSampler = EulerSampler(), batch: Int = 32) { self.sampler = sampler; self.batch = batch }

    /// The initial noise of (prompt i, image j).
    public static func noise(seed: UInt64, prompt i: Int, image j: Int, count: Int) -> [Float] {
        var rng = RNG(seed: seed).split(UInt64(i)).split(UInt64(j))
        return rng.normals(count)
    }

    /// images[i][j]: (S, S, C) in model range, for prompt i and seed index j.
    public func generate(model: DiT, prompts: [Prompt], perPrompt: Int, seed: UInt64) throws -> [[[Float]]] {
        let n = model.config.pixelsPerImage
        let jobs = prompts.indices.flatMap { i in (0..<perPrompt).map { (i, $0) } }
        let tokens = prompts.map(\.tokens)
        var out = prompts.map { _ in [[Float]](repeating: [], count: perPrompt) }
        let ws = try model.makeWorkspace(batch: sampler.cfgScale == 1 ? batch : 2 * batch, training: false)
        var start = 0
        while start < jobs.count {
            let chunk = jobs[start..<min(jobs.count, start + batch)]
            var x = chunk.flatMap { Self.noise(seed: seed, prompt: $0.0, image: $0.1, count: n) }
            let tok = chunk.flatMap { tokens[$0.0] }
            sampler.sample(model: model, ws: ws, x: &x, tokens: tok)
            for (k, job) in chunk.enumerated() { out[job.0][job.1] = Array(x[(k * n)..<((k + 1) * n)]) }
            start += batch
        }
        return out
    }
}
