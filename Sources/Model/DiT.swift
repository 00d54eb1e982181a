import Tensor
import Shapes

/// The velocity network v_theta(x_t, t, prompt): a single-stream DiT with joint attention over
/// [P image patches ; L text tokens] (a prompt's trailing PAD tokens left out: each sample's
/// rows end at its last non-PAD token, see Workspace.rows), adaLN-Zero conditioning on the
/// timestep and pooled text, a fixed 2-D sin-cos position embedding for the patches (the network
/// of the PyTorch peer that docs/PERFORMANCE.md compares against, which orders the tokens [text ;
/// image] and computes the PAD rows: the same function; `s32c` adds a convolutional output head).
///
/// Explicit forward and backward (llm.c style): `forward` fills a `Workspace` with what the
/// backward needs; `backward(dv)` ACCUMULATES parameter gradients into `grads`. Every loss in
/// flowtune reaches the weights through v only, so the losses are small "heads" giving dL/dv.
public final class DiT {
    public let config: ModelConfig
    public let layout: ParamLayout
    public let params: FloatBuffer     // all parameters, flat (layout.total)
    public let grads: FloatBuffer      // their gradients, same layout
    /// What the network reads its prompts with (stored in its checkpoint).
    public var vocabulary: TextVocabulary = .shapes
    /// The folder of images it was pretrained on (nil: the shapes world's renderer).
    public var trainedOn: DataProvenance?
    let posEmbed: [Float]              // (P, D), fixed
    let blockOffsets: [BlockOffsets]   // each block's parameters in the flat buffer

    /// Where one block's tensors start in the flat parameter (and gradient) buffer, looked up
    /// once: the forward and backward passes run per sampler step and build no names.
    struct BlockOffsets {
        let adaLNWeight, adaLNBias, qkvWeight, qkvBias, projWeight, projBias, fc1Weight, fc1Bias, fc2Weight, fc2Bias: Int
        init(_ layout: ParamLayout, block l: Int) {
            func o(_ name: String) -> Int { layout.offset("blocks.\(l).\(name)") }
            adaLNWeight = o("adaLN.weight"); adaLNBias = o("adaLN.bias"); qkvWeight = o("qkv.weight"); qkvBias = o("qkv.bias")
            projWeight = o("proj.weight"); projBias = o("proj.bias"); fc1Weight = o("fc1.weight"); fc1Bias = o("fc1.bias")
            fc2Weight = o("fc2.weight"); fc2Bias = o("fc2.bias")
        }
    }

    public init(config: ModelConfig, params: FloatBuffer? = nil, seed: UInt64 = 0) throws {
        try config.validate()
        self.config = config
        layout = ParamLayout(config)
        // weights and gradients (and as much again for the copies a run keeps: the base model,
        // AdamW's moments), estimated before anything is allocated
        let needed = Double(layout.total) * 4 * 4, memory = Double(physicalMemoryBytes)
        guard memory == 0 || needed <= memory else {
            throw ModelError(String(format: "model configuration '%@' has %ld parameters: its weights, gradients and optimiser state need %.1f GiB, more than this machine's %.1f GiB",
                                    config.name, layout.total, needed / 1_073_741_824, memory / 1_073_741_824))
        }
        if let params {
            guard params.count == layout.total else {
                throw ModelError("parameter count \(params.count) does not match configuration '\(config.name)' (\(layout.total))")
            }
            self.params = params
        } else {
            self.params = FloatBuffer(count: layout.total)
            var rng = RNG(seed: seed)
            layout.initialise(self.params, rng: &rng)
        }
        grads = try FloatBuffer(count: layout.total, purpose: "the gradients of '\(config.name)'")
        posEmbed = sinCosPositionEmbedding(side: config.patchesPerSide, width: config.width)
        let layout = layout
        blockOffsets = (0..<config.depth).map { BlockOffsets(layout, block: $0) }
    }

    /// Copies the weights of `source` into this network: every tensor of the same name and shape.
    /// A plain-head source into a convolutional-head network (s32 -> s32c) is mapped so that both
    /// compute the same v: the final linear's first 3 channels of each pixel take the source's
    /// outputs, the convolution starts as the identity on them (centre tap 1), and the other
    /// channels keep their random initialisation (their convolution weights start at 0, so they
    /// add nothing until training moves them). Returns the names of tensors that were not copied.
    @discardableResult
    public func initialise(from source: DiT) throws -> [String] {
        let c = config, sc = source.config
        guard c.width == sc.width, c.depth == sc.depth, c.heads == sc.heads, c.patch == sc.patch, c.imageSize == sc.imageSize,
              c.vocabSize == sc.vocabSize, c.textLength == sc.textLength, c.freqDim == sc.freqDim, c.mlpRatio == sc.mlpRatio else {
            throw ModelError("cannot initialise '\(c.name)' from '\(sc.name)': the networks differ beyond the output head")
        }
        var notCopied: [String] = []
        for e in layout.entries {
            if let o = source.layout.entry(e.name), o.shape == e.shape {
                (params.pointer + e.offset).update(from: source.params.pointer + o.offset, count: e.count)
            } else {
                notCopied.append(e.name)
            }
        }
        if c.convHead && !sc.convHead {
            let K = c.headChannels, C = c.channels, D = c.width, pixels = c.patch * c.patch
            let w = p("final.linear.weight"), b = p("final.linear.bias")
            let sw = source.p("final.linear.weight"), sb = source.p("final.linear.bias")
            for q in 0..<pixels { for ch in 0..<C {
                (w + (q * K + ch) * D).update(from: sw + (q * C + ch) * D, count: D)
                b[q * K + ch] = sb[q * C + ch]
            } }
            let cw = p("final.conv.weight")
            cw.update(repeating: 0, count: C * K * 9)
            for ch in 0..<C { cw[(ch * K + ch) * 9 + 4] = 1 }
            p("final.conv.bias").update(repeating: 0, count: C)
            notCopied.removeAll { $0.hasPrefix("final.linear") || $0.hasPrefix("final.conv") }
        }
        return notCopied
    }

    /// A second network with a copy of these weights (for a frozen reference or an EMA).
    public func clone() -> DiT {
        let c = try! DiT(config: config, params: params.copy())
        c.vocabulary = vocabulary; c.trainedOn = trainedOn
        return c
    }

    public var parameterCount: Int { layout.total }

    /// Activation buffers for batches of up to `batch` images; an allocation that fails is an
    /// error naming the batch (not a crash).
    public func makeWorkspace(batch: Int, training: Bool) throws -> Workspace {
        try Workspace(config: config, batch: batch, training: training)
    }

    @inline(__always) func p(_ name: String) -> UnsafeMutablePointer<Float> { params.pointer + layout.offset(name) }
    @inline(__always) func g(_ name: String) -> UnsafeMutablePointer<Float> { grads.pointer + layout.offset(name) }
    @inline(__always) func p(_ offset: Int) -> UnsafeMutablePointer<Float> { params.pointer + offset }
    @inline(__always) func g(_ offset: Int) -> UnsafeMutablePointer<Float> { grads.pointer + offset }

    // MARK: - forward

    /// Text tokens of sample b the network reads: up to its last non-PAD token (a PAD after it
    /// affects nothing, so its row is left out; a PAD before it stays, masked).
    func textInUse(_ tokens: [Int32], _ b: Int) -> Int {
        let L = config.textLength
        var n = L
        while n > 0 && tokens[b * L + n - 1] == 0 { n -= 1 }   // 0: PAD
        return n
    }

    /// After a forward of `B` samples in `ws`: each sample's residual stream after the last block,
    /// averaged over its image rows (D values a sample, written to out + b * D): what the network
    /// made of the state, its time and its prompt together (AC-Flow's feature critic reads it).
    public func imageFeatures(_ ws: Workspace, batch B: Int, into out: UnsafeMutablePointer<Float>) {
        let P = config.imageTokens, D = config.width, h = ws.hOut.pointer
        for b in 0..<B {
            let o = out + b * D
            o.update(repeating: 0, count: D)
            let r0 = ws.rows.first[b]
            for r in r0..<(r0 + P) { for i in 0..<D { o[i] += h[r * D + i] } }
            for i in 0..<D { o[i] /= Float(P) }
        }
    }

    /// v (B, S, S, C) for inputs x (B, S, S, C), t (B) and token ids (B, L). Returns ws.v's pointer.
    @discardableResult
    public func forward(_ ws: Workspace, x: UnsafePointer<Float>, t: UnsafePointer<Float>, tokens: UnsafePointer<Int32>,
                        batch B: Int) -> UnsafeMutablePointer<Float> {
        precondition(B <= ws.batch && B > 0, "forward: batch \(B) exceeds the workspace's \(ws.batch)")
        let c = config, L = c.textLength, P = c.imageTokens, D = c.width, pp = c.patchDim
        // inputs: the tokens, each sample's rows (its patches, then its text up to the last
        // non-PAD token) and the key mask of those rows
        for i in 0..<(B * L) { ws.tokens[i] = tokens[i] }
        ws.rows.set(counts: (0..<B).lazy.map { b in P + self.textInUse(ws.tokens, b) })
        if ws.imageRows.batch != B { ws.imageRows.set(counts: repeatElement(P, count: B)) }
        for b in 0..<B {
            let r0 = ws.rows.first[b]
            for i in 0..<P { ws.keyMask[r0 + i] = true }
            for j in 0..<(ws.rows.count(b) - P) { ws.keyMask[r0 + P + j] = ws.tokens[b * L + j] != 0 }
        }
        // patch embedding + fixed position -> image rows of the residual stream
        patchify(ws.patches.pointer, x, batch: B)
        let h0 = ws.blocks[0].hIn.pointer
        for b in 0..<B {
            let rows = h0 + ws.rows.first[b] * D
            linearForward(out: rows, inp: ws.patches.pointer + b * P * pp, weight: p("patch_embed.weight"),
                          bias: p("patch_embed.bias"), n: P, inFeatures: pp, outFeatures: D)
            for i in 0..<(P * D) { rows[i] += posEmbed[i] }
            // text rows: token embedding + learned position
            let emb = p("token_embed.weight"), pos = p("text_pos")
            for j in 0..<(ws.rows.count(b) - P) {
                let tok = Int(ws.tokens[b * L + j])
                let row = rows + (P + j) * D
                for i in 0..<D { row[i] = emb[tok * D + i] + pos[j * D + i] }
            }
        }
        // pooled text: mean of the non-pad token embeddings (no position)
        ws.tokens.withUnsafeBufferPointer { tok in ws.textCount.withUnsafeMutableBufferPointer { cnt in
            pooledTokenEmbedding(out: ws.pooled.pointer, outStride: D, counts: cnt.baseAddress!, tokens: tok.baseAddress!,
                                 table: p("token_embed.weight"), batch: B, textLength: L, width: D)
        } }
        // conditioning c = MLP_t(sinusoidal(1000 t)) + Linear(pooled);  sc = SiLU(c)
        timestepFeatures(out: ws.tfreq.pointer, t: t, batch: B, dim: c.freqDim)
        linearForward(out: ws.c1.pointer, inp: ws.tfreq.pointer, weight: p("t_mlp.0.weight"), bias: p("t_mlp.0.bias"),
                      n: B, inFeatures: c.freqDim, outFeatures: D)
        siluForward(out: ws.c1s.pointer, inp: ws.c1.pointer, count: B * D)
        linearForward(out: ws.c2.pointer, inp: ws.c1s.pointer, weight: p("t_mlp.2.weight"), bias: p("t_mlp.2.bias"),
                      n: B, inFeatures: D, outFeatures: D)
        linearForward(out: ws.cp.pointer, inp: ws.pooled.pointer, weight: p("text_proj.weight"), bias: p("text_proj.bias"),
                      n: B, inFeatures: D, outFeatures: D)
        for i in 0..<(B * D) { ws.cond[i] = ws.c2[i] + ws.cp[i] }
        siluForward(out: ws.sc.pointer, inp: ws.cond.pointer, count: B * D)

        for l in 0..<c.depth {
            let a = ws.blocks[ws.training ? l : 0]
            let out = (ws.training && l + 1 < c.depth) ? ws.blocks[l + 1].hIn.pointer : (l + 1 < c.depth ? a.hIn.pointer : ws.hOut.pointer)
            blockForward(l, a, out: out, ws: ws, batch: B)
        }

        // final layer on the image tokens: adaLN (shift, scale) -> Linear(D, pp) -> unpatchify
        linearForward(out: ws.modF.pointer, inp: ws.sc.pointer, weight: p("final.adaLN.weight"), bias: p("final.adaLN.bias"),
                      n: B, inFeatures: D, outFeatures: 2 * D)
        layerNormModulateForward(out: ws.mF.pointer, mean: ws.meanF.pointer,
                                 rstd: ws.rstdF.pointer, x: ws.hOut.pointer, xFirst: ws.rows.first, rows: ws.imageRows,
                                 mod: ws.modF.pointer, modStride: 2 * D, shift: 0, scale: D, d: D)
        linearForward(out: ws.outP.pointer, inp: ws.mF.pointer, weight: p("final.linear.weight"), bias: p("final.linear.bias"),
                      n: B * P, inFeatures: D, outFeatures: c.outPatchDim)
        if c.convHead {
            Model.unpatchify(c, ws.feat.pointer, ws.outP.pointer, batch: B, channels: c.headChannels)
            conv3x3Forward(out: ws.v.pointer, inp: ws.feat.pointer, weight: p("final.conv.weight"), bias: p("final.conv.bias"),
                           shape: convShape(B))
        } else {
            unpatchify(ws.v.pointer, ws.outP.pointer, batch: B)
        }
        return ws.v.pointer
    }

    func blockForward(_ l: Int, _ a: Workspace.Block, out: UnsafeMutablePointer<Float>, ws: Workspace, batch B: Int) {
        let c = config, T = c.tokens, D = c.width, rows = ws.rows, N = rows.total, o = blockOffsets[l]
        linearForward(out: a.mod.pointer, inp: ws.sc.pointer, weight: p(o.adaLNWeight), bias: p(o.adaLNBias),
                      n: B, inFeatures: D, outFeatures: 6 * D)
        // attention branch
        layerNormModulateForward(out: a.m1.pointer, mean: a.mean1.pointer,
                                 rstd: a.rstd1.pointer, x: a.hIn.pointer, xFirst: rows.first, rows: rows, mod: a.mod.pointer,
                                 modStride: 6 * D, shift: 0, scale: D, d: D)
        linearForward(out: a.qkv.pointer, inp: a.m1.pointer, weight: p(o.qkvWeight), bias: p(o.qkvBias),
                      n: N, inFeatures: D, outFeatures: 3 * D)
        attentionForward(out: a.att.pointer, probs: a.probs.pointer, qkv: a.qkv.pointer, keyMask: ws.keyMask,
                         first: rows.first, shape: AttentionShape(batch: B, tokens: T, heads: c.heads, headDim: c.headDim))
        linearForward(out: a.ao.pointer, inp: a.att.pointer, weight: p(o.projWeight), bias: p(o.projBias),
                      n: N, inFeatures: D, outFeatures: D)
        gatedResidualForward(out: a.hMid.pointer, res: a.hIn.pointer, x: a.ao.pointer, mod: a.mod.pointer, modStride: 6 * D,
                             gate: 2 * D, rows: rows, d: D)
        // MLP branch
        layerNormModulateForward(out: a.m2.pointer, mean: a.mean2.pointer,
                                 rstd: a.rstd2.pointer, x: a.hMid.pointer, xFirst: rows.first, rows: rows, mod: a.mod.pointer,
                                 modStride: 6 * D, shift: 3 * D, scale: 4 * D, d: D)
        linearForward(out: a.f1.pointer, inp: a.m2.pointer, weight: p(o.fc1Weight), bias: p(o.fc1Bias),
                      n: N, inFeatures: D, outFeatures: c.hidden, geluOut: a.g.pointer)
        linearForward(out: a.f2.pointer, inp: a.g.pointer, weight: p(o.fc2Weight), bias: p(o.fc2Bias),
                      n: N, inFeatures: c.hidden, outFeatures: D)
        gatedResidualForward(out: out, res: a.hMid.pointer, x: a.f2.pointer, mod: a.mod.pointer, modStride: 6 * D,
                             gate: 5 * D, rows: rows, d: D)
    }

    // MARK: - backward

    /// Accumulates dL/dparams into `grads` given dv = dL/dv (B, S, S, C), for the batch of the
    /// last `forward` on `ws` (which must be a training workspace).
    public func backward(_ ws: Workspace, dv: UnsafePointer<Float>, batch B: Int) {
        precondition(ws.training, "backward needs a training workspace")
        let c = config, L = c.textLength, P = c.imageTokens, D = c.width, pp = c.patchDim
        // final layer
        if c.convHead {
            conv3x3Backward(dinp: ws.dFeat.pointer, dweight: g("final.conv.weight"), dbias: g("final.conv.bias"), dout: dv,
                            inp: ws.feat.pointer, weight: p("final.conv.weight"), shape: convShape(B))
            Model.patchify(c, ws.dPatch.pointer, ws.dFeat.pointer, batch: B, channels: c.headChannels)
        } else {
            patchify(ws.dPatch.pointer, dv, batch: B)
        }
        linearBackward(dinp: ws.dm.pointer, dweight: g("final.linear.weight"), dbias: g("final.linear.bias"),
                       dout: ws.dPatch.pointer, inp: ws.mF.pointer, weight: p("final.linear.weight"),
                       n: B * P, inFeatures: D, outFeatures: c.outPatchDim)
        ws.dmodF.pointer.update(repeating: 0, count: B * 2 * D)
        ws.dh.pointer.update(repeating: 0, count: ws.rows.total * D)
        layerNormModulateBackward(dinp: ws.dh.pointer, dmod: ws.dmodF.pointer, dout: ws.dm.pointer,
                                  x: ws.hOut.pointer, xFirst: ws.rows.first, rows: ws.imageRows, mean: ws.meanF.pointer,
                                  rstd: ws.rstdF.pointer, mod: ws.modF.pointer, modStride: 2 * D, shift: 0, scale: D, d: D)
        linearBackward(dinp: ws.dsc.pointer, dweight: g("final.adaLN.weight"), dbias: g("final.adaLN.bias"),
                       dout: ws.dmodF.pointer, inp: ws.sc.pointer, weight: p("final.adaLN.weight"),
                       n: B, inFeatures: D, outFeatures: 2 * D)
        // blocks, last to first; ws.dh holds dL/d(block output) and becomes dL/d(block input)
        for l in stride(from: c.depth - 1, through: 0, by: -1) {
            blockBackward(l, ws.blocks[l], ws: ws, batch: B)
        }
        // conditioning: dc = SiLU'(c) dsc; c = c2 + cp
        siluBackward(dinp: ws.dc.pointer, dout: ws.dsc.pointer, inp: ws.cond.pointer, count: B * D)
        linearBackward(dinp: ws.dcs.pointer, dweight: g("text_proj.weight"), dbias: g("text_proj.bias"),
                       dout: ws.dc.pointer, inp: ws.pooled.pointer, weight: p("text_proj.weight"),
                       n: B, inFeatures: D, outFeatures: D)
        let gemb = g("token_embed.weight"), gpos = g("text_pos")
        ws.tokens.withUnsafeBufferPointer { tok in ws.textCount.withUnsafeBufferPointer { cnt in
            pooledTokenEmbeddingBackward(dtable: gemb, dout: ws.dcs.pointer, doutStride: D, counts: cnt.baseAddress!,
                                         tokens: tok.baseAddress!, batch: B, textLength: L, width: D)
        } }
        linearBackward(dinp: ws.dcs.pointer, dweight: g("t_mlp.2.weight"), dbias: g("t_mlp.2.bias"),
                       dout: ws.dc.pointer, inp: ws.c1s.pointer, weight: p("t_mlp.2.weight"),
                       n: B, inFeatures: D, outFeatures: D)
        siluBackward(dinp: ws.dc.pointer, dout: ws.dcs.pointer, inp: ws.c1.pointer, count: B * D)
        linearBackward(dinp: nil, dweight: g("t_mlp.0.weight"), dbias: g("t_mlp.0.bias"),
                       dout: ws.dc.pointer, inp: ws.tfreq.pointer, weight: p("t_mlp.0.weight"),
                       n: B, inFeatures: c.freqDim, outFeatures: D)
        // input embeddings
        for b in 0..<B {
            let rows = ws.dh.pointer + ws.rows.first[b] * D
            for j in 0..<(ws.rows.count(b) - P) {
                let tok = Int(ws.tokens[b * L + j])
                let row = rows + (P + j) * D
                for i in 0..<D { gemb[tok * D + i] += row[i]; gpos[j * D + i] += row[i] }
            }
            linearBackward(dinp: nil, dweight: g("patch_embed.weight"), dbias: g("patch_embed.bias"),
                           dout: rows, inp: ws.patches.pointer + b * P * pp,
                           weight: p("patch_embed.weight"), n: P, inFeatures: pp, outFeatures: D)
        }
    }

    func blockBackward(_ l: Int, _ a: Workspace.Block, ws: Workspace, batch B: Int) {
        let c = config, T = c.tokens, D = c.width, rows = ws.rows, N = rows.total, H = c.hidden, o = blockOffsets[l]
        let dh = ws.dh.pointer, dmod = ws.dmod.pointer
        dmod.update(repeating: 0, count: B * 6 * D)
        // MLP branch: out = hMid + gate2 * f2
        gatedResidualBackward(dx: ws.dm.pointer, dmod: dmod, dout: dh, x: a.f2.pointer, mod: a.mod.pointer, modStride: 6 * D,
                              gate: 5 * D, rows: rows, d: D)
        linearBackward(dinp: ws.dhid.pointer, dweight: g(o.fc2Weight), dbias: g(o.fc2Bias),
                       dout: ws.dm.pointer, inp: a.g.pointer, weight: p(o.fc2Weight), n: N, inFeatures: H, outFeatures: D)
        geluBackward(dinp: ws.dhid.pointer, dout: ws.dhid.pointer, inp: a.f1.pointer, count: N * H)
        linearBackward(dinp: ws.dm.pointer, dweight: g(o.fc1Weight), dbias: g(o.fc1Bias),
                       dout: ws.dhid.pointer, inp: a.m2.pointer, weight: p(o.fc1Weight), n: N, inFeatures: D, outFeatures: H)
        layerNormModulateBackward(dinp: dh, dmod: dmod, dout: ws.dm.pointer, x: a.hMid.pointer, xFirst: rows.first, rows: rows,
                                  mean: a.mean2.pointer, rstd: a.rstd2.pointer, mod: a.mod.pointer, modStride: 6 * D,
                                  shift: 3 * D, scale: 4 * D, d: D)
        // attention branch: hMid = hIn + gate1 * ao
        gatedResidualBackward(dx: ws.dm.pointer, dmod: dmod, dout: dh, x: a.ao.pointer, mod: a.mod.pointer, modStride: 6 * D,
                              gate: 2 * D, rows: rows, d: D)
        linearBackward(dinp: ws.datt.pointer, dweight: g(o.projWeight), dbias: g(o.projBias),
                       dout: ws.dm.pointer, inp: a.att.pointer, weight: p(o.projWeight), n: N, inFeatures: D, outFeatures: D)
        attentionBackward(dqkv: ws.dqkv.pointer, dout: ws.datt.pointer, probs: a.probs.pointer, qkv: a.qkv.pointer,
                          first: rows.first, shape: AttentionShape(batch: B, tokens: T, heads: c.heads, headDim: c.headDim))
        linearBackward(dinp: ws.dm.pointer, dweight: g(o.qkvWeight), dbias: g(o.qkvBias),
                       dout: ws.dqkv.pointer, inp: a.m1.pointer, weight: p(o.qkvWeight), n: N, inFeatures: D, outFeatures: 3 * D)
        layerNormModulateBackward(dinp: dh, dmod: dmod, dout: ws.dm.pointer, x: a.hIn.pointer, xFirst: rows.first, rows: rows,
                                  mean: a.mean1.pointer, rstd: a.rstd1.pointer, mod: a.mod.pointer, modStride: 6 * D,
                                  shift: 0, scale: D, d: D)
        // adaLN: mod = sc W^T + b
        linearBackward(dinp: ws.dsc.pointer, dweight: g(o.adaLNWeight), dbias: g(o.adaLNBias),
                       dout: dmod, inp: ws.sc.pointer, weight: p(o.adaLNWeight), n: B, inFeatures: D, outFeatures: 6 * D,
                       accumulateInput: true)
    }

    // MARK: - patches

    func convShape(_ B: Int) -> Conv3x3Shape {
        Conv3x3Shape(batch: B, side: config.imageSize, inChannels: config.headChannels, outChannels: config.channels)
    }

    func patchify(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, batch B: Int) {
        Model.patchify(config, out, x, batch: B)
    }

    /// The inverse of `patchify`.
    func unpatchify(_ out: UnsafeMutablePointer<Float>, _ patches: UnsafePointer<Float>, batch B: Int) {
        Model.unpatchify(config, out, patches, batch: B)
    }
}

/// (B, S, S, C) -> (B, P, p*p*C), patch index = row * (S/p) + col, inside (dy, dx, c).
/// `channels` defaults to the image's (3); the convolutional head's feature maps have more.
public func patchify(_ c: ModelConfig, _ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, batch B: Int,
                     channels: Int? = nil) {
    forEachPatchRow(c, batch: B, channels: channels ?? c.channels) { image, patch, count in
        (out + patch).update(from: x + image, count: count)
    }
}

/// The inverse of `patchify`.
public func unpatchify(_ c: ModelConfig, _ out: UnsafeMutablePointer<Float>, _ patches: UnsafePointer<Float>, batch B: Int,
                       channels: Int? = nil) {
    forEachPatchRow(c, batch: B, channels: channels ?? c.channels) { image, patch, count in
        (out + image).update(from: patches + patch, count: count)
    }
}

/// The correspondence both directions use: for each row of pixels inside each patch, its offset
/// in the (B, S, S, C) image, its offset in the (B, P, p*p*C) patches, and its length (p*C).
@inline(__always)
func forEachPatchRow(_ c: ModelConfig, batch B: Int, channels C: Int,
                     _ body: (_ image: Int, _ patch: Int, _ count: Int) -> Void) {
    let S = c.imageSize, ps = c.patch, n = c.patchesPerSide
    for b in 0..<B {
        for pr in 0..<n { for pc in 0..<n {
            let patch = (b * n * n + pr * n + pc) * ps * ps * C
            for dy in 0..<ps { body(((b * S + pr * ps + dy) * S + pc * ps) * C, patch + dy * ps * C, ps * C) }
        } }
    }
}
