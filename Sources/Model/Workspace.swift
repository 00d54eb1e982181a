import Tensor

/// Activation buffers for one batch size, allocated once and reused by every forward/backward.
/// With `training` false only one block's activations are kept (inference reuses them).
public final class Workspace {
    public let batch: Int          // capacity: forward/backward may use any batch <= this
    public let training: Bool
    let c: ModelConfig

    // inputs
    var tokens: [Int32]                         // (B, L)
    // The token rows of the last forward: sample b's P image patches then its text up to the last
    // non-PAD token (trailing PAD is left out), rows.first[b] ..< rows.first[b + 1]; every (rows, .)
    // activation below is laid out so, with room for B x T rows.
    var rows: SampleRows
    var imageRows: SampleRows                   // the final layer's (B, P) rows
    var keyMask: [Bool]                         // per token row: false for a PAD inside a prompt
    var textCount: [Float]                      // (B) non-pad tokens per prompt
    let patches: FloatBuffer                    // (B, P, pp)
    // conditioning
    let tfreq, c1, c1s, c2, pooled, cp, cond, sc: FloatBuffer   // (B, F) / (B, D)
    // blocks (one set per block when training; one shared set otherwise)
    struct Block {
        let hIn, mod, m1, qkv, probs, att, ao, hMid, m2, f1, g, f2: FloatBuffer
        let mean1, rstd1, mean2, rstd2: FloatBuffer
    }
    var blocks: [Block]
    let hOut: FloatBuffer                       // (B, T, D) residual stream after the last block
    let modF, mF, outP, meanF, rstdF: FloatBuffer
    let feat: FloatBuffer                       // (B, S, S, K) the convolutional head's input (empty without one)
    public let v: FloatBuffer                   // (B, S, S, C) the velocity
    // backward scratch
    let dh, dm, dqkv, datt, dhid, dmod, dsc, dc, dmodF, dcs: FloatBuffer
    let dPatch, dFeat: FloatBuffer

    init(config c: ModelConfig, batch B: Int, training: Bool) throws {
        func buffer(_ count: Int) throws -> FloatBuffer {
            try FloatBuffer(count: count, purpose: "the activations of '\(c.name)' for a batch of \(B)\(training ? " (training)" : "")")
        }
        self.c = c; self.batch = B; self.training = training
        let T = c.tokens, D = c.width, P = c.imageTokens, H = c.hidden
        tokens = [Int32](repeating: 0, count: B * c.textLength)
        keyMask = [Bool](repeating: true, count: B * T)
        rows = SampleRows(batch: B, rows: T); imageRows = SampleRows(batch: B, rows: P)
        textCount = [Float](repeating: 1, count: B)
        patches = try buffer(B * P * c.patchDim)
        tfreq = try buffer(B * c.freqDim)
        c1 = try buffer(B * D); c1s = try buffer(B * D); c2 = try buffer(B * D)
        pooled = try buffer(B * D); cp = try buffer(B * D)
        cond = try buffer(B * D); sc = try buffer(B * D)
        let sets = training ? c.depth : 1
        blocks = try (0..<sets).map { _ in
            Block(hIn: try buffer(B * T * D), mod: try buffer(B * 6 * D),
                  m1: try buffer(B * T * D),
                  qkv: try buffer(B * T * 3 * D), probs: try buffer(B * c.heads * T * T),
                  att: try buffer(B * T * D), ao: try buffer(B * T * D), hMid: try buffer(B * T * D),
                  m2: try buffer(B * T * D),
                  f1: try buffer(B * T * H), g: try buffer(B * T * H), f2: try buffer(B * T * D),
                  mean1: try buffer(B * T), rstd1: try buffer(B * T),
                  mean2: try buffer(B * T), rstd2: try buffer(B * T))
        }
        hOut = try buffer(B * T * D)
        modF = try buffer(B * 2 * D); mF = try buffer(B * P * D)
        outP = try buffer(B * P * c.outPatchDim)
        feat = try buffer(c.convHead ? B * c.imageSize * c.imageSize * c.headChannels : 0)
        meanF = try buffer(B * P); rstdF = try buffer(B * P)
        v = try buffer(B * c.pixelsPerImage)
        if training {
            dh = try buffer(B * T * D); dm = try buffer(B * T * D); dqkv = try buffer(B * T * 3 * D)
            datt = try buffer(B * T * D); dhid = try buffer(B * T * H)
            dmod = try buffer(B * 6 * D); dsc = try buffer(B * D); dc = try buffer(B * D)
            dmodF = try buffer(B * 2 * D); dcs = try buffer(B * D)
            dPatch = try buffer(B * P * c.outPatchDim)
            dFeat = try buffer(c.convHead ? B * c.imageSize * c.imageSize * c.headChannels : 0)
        } else {
            let none = try buffer(0)
            dh = none; dm = none; dqkv = none; datt = none; dhid = none; dmod = none; dsc = none
            dc = none; dmodF = none; dcs = none; dPatch = none; dFeat = none
        }
    }
}
