import Tensor

/// Activation buffers for one batch size, allocated once and reused by every forward/backward.
/// With `training` false only one block's activations are kept (inference reuses them).
public final class Workspace {
    public let batch: Int          // capacity: forward/backward may use any batch <= this
    public let training: Bool
    let c: ModelConfig

    // inputs
    var tokens: [Int32]                         // (B, L)
    var keyMask: [Bool]                         // (B, T)
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

    init(config c: ModelConfig, batch B: Int, training: Bool) {
        self.c = c; self.batch = B; self.training = training
        let T = c.tokens, D = c.width, P = c.imageTokens, H = c.hidden
        tokens = [Int32](repeating: 0, count: B * c.textLength)
        keyMask = [Bool](repeating: true, count: B * T)
        textCount = [Float](repeating: 1, count: B)
        patches = FloatBuffer(count: B * P * c.patchDim)
        tfreq = FloatBuffer(count: B * c.freqDim)
        c1 = FloatBuffer(count: B * D); c1s = FloatBuffer(count: B * D); c2 = FloatBuffer(count: B * D)
        pooled = FloatBuffer(count: B * D); cp = FloatBuffer(count: B * D)
        cond = FloatBuffer(count: B * D); sc = FloatBuffer(count: B * D)
        let sets = training ? c.depth : 1
        blocks = (0..<sets).map { _ in
            Block(hIn: FloatBuffer(count: B * T * D), mod: FloatBuffer(count: B * 6 * D),
                  m1: FloatBuffer(count: B * T * D),
                  qkv: FloatBuffer(count: B * T * 3 * D), probs: FloatBuffer(count: B * c.heads * T * T),
                  att: FloatBuffer(count: B * T * D), ao: FloatBuffer(count: B * T * D), hMid: FloatBuffer(count: B * T * D),
                  m2: FloatBuffer(count: B * T * D),
                  f1: FloatBuffer(count: B * T * H), g: FloatBuffer(count: B * T * H), f2: FloatBuffer(count: B * T * D),
                  mean1: FloatBuffer(count: B * T), rstd1: FloatBuffer(count: B * T),
                  mean2: FloatBuffer(count: B * T), rstd2: FloatBuffer(count: B * T))
        }
        hOut = FloatBuffer(count: B * T * D)
        modF = FloatBuffer(count: B * 2 * D); mF = FloatBuffer(count: B * P * D)
        outP = FloatBuffer(count: B * P * c.outPatchDim)
        feat = FloatBuffer(count: c.convHead ? B * c.imageSize * c.imageSize * c.headChannels : 0)
        meanF = FloatBuffer(count: B * P); rstdF = FloatBuffer(count: B * P)
        v = FloatBuffer(count: B * c.pixelsPerImage)
        if training {
            dh = FloatBuffer(count: B * T * D); dm = FloatBuffer(count: B * T * D); dqkv = FloatBuffer(count: B * T * 3 * D)
            datt = FloatBuffer(count: B * T * D); dhid = FloatBuffer(count: B * T * H)
            dmod = FloatBuffer(count: B * 6 * D); dsc = FloatBuffer(count: B * D); dc = FloatBuffer(count: B * D)
            dmodF = FloatBuffer(count: B * 2 * D); dcs = FloatBuffer(count: B * D)
            dPatch = FloatBuffer(count: B * P * c.outPatchDim)
            dFeat = FloatBuffer(count: c.convHead ? B * c.imageSize * c.imageSize * c.headChannels : 0)
        } else {
            let none = FloatBuffer(count: 0)
            dh = none; dm = none; dqkv = none; datt = none; dhid = none; dmod = none; dsc = none
            dc = none; dmodF = none; dcs = none; dPatch = none; dFeat = none
        }
    }
}
