import Foundation
import Tensor

/// One line of metrics.jsonl: what the fine-tuning loop writes and what `report`, `compare`
/// and `bench` read. Fields an iteration does not have (an algorithm's own, or everything but
/// `eval` on the step-0 line) are nil and left out of the line. The JSON keys are the coding
/// keys; lines are written with a fixed key order and 6 significant digits.
public struct MetricsRecord: Codable, Equatable {
    public var step: Int
    public var algo: String
    // every training iteration
    public var rewardMean, rewardStd: Double?
    public var rewards: [String: Double]?         // each scorer's batch mean (weight 0 included)
    public var seconds, rolloutSeconds, rewardSeconds, trainSeconds, lr: Double?
    public var peakRSSMB: Double?                 // the process's peak resident memory so far, MiB
    // Flow-GRPO and GRPO-Guard (ClippedRatioAlgorithm)
    public var onpolicyRatioMaxDev, loss, gradNorm, keptFraction, clipRange, klRef: Double?
    // every algorithm: the gradient noise scale's two estimates (GradientNoise), per sample of
    // the algorithm's loss (a trajectory for the GRPO family, a visited state for AC-Flow)
    public var gradSignal, gradNoise: Double?
    public var timesteps: [TimestepRecord]?
    // AC-Flow
    public var criticMse, criticExplainedVariance, criticExplainedVarianceBefore: Double?
    public var criticInUse, warmup: Bool?
    public var advClippedFraction, ratioClippedFraction, weightMean, weightMax, w2, covWRt, gradCosine: Double?
    public var actorSteps: Int?
    // every --eval-every iterations and at step 0
    public var eval: EvalRecord?

    public init(step: Int, algo: String) { self.step = step; self.algo = algo }

    enum CodingKeys: String, CodingKey {
        case step, algo, rewardMean = "reward_mean", rewardStd = "reward_std", rewards, seconds
        case rolloutSeconds = "rollout_seconds", rewardSeconds = "reward_seconds", trainSeconds = "train_seconds", lr
        case peakRSSMB = "peak_rss_mb"
        case onpolicyRatioMaxDev = "onpolicy_ratio_max_dev", loss, gradNorm = "grad_norm", keptFraction = "kept_fraction"
        case clipRange = "clip_range", klRef = "kl_ref", timesteps, gradSignal = "grad_signal", gradNoise = "grad_noise"
        case criticMse = "critic_mse", criticExplainedVariance = "critic_explained_variance", criticInUse = "critic_in_use"
        case criticExplainedVarianceBefore = "critic_explained_variance_before", warmup
        case advClippedFraction = "adv_clipped_fraction", ratioClippedFraction = "ratio_clipped_fraction", weightMean = "weight_mean", weightMax = "weight_max", w2
        case covWRt = "cov_w_rt", gradCosine = "grad_cosine", actorSteps = "actor_steps"
        case eval
    }

    /// The per-iteration numbers in the line's order, in three runs around `rewards` and the
    /// flags (one list for the writer and for `scalars`).
    private var numbers: (head: [(CodingKeys, Double?)], middle: [(CodingKeys, Double?)], tail: [(CodingKeys, Double?)]) {
        ([(.rewardMean, rewardMean), (.rewardStd, rewardStd)],
         [(.seconds, seconds), (.rolloutSeconds, rolloutSeconds), (.rewardSeconds, rewardSeconds), (.trainSeconds, trainSeconds),
          (.lr, lr), (.peakRSSMB, peakRSSMB), (.criticMse, criticMse), (.criticExplainedVariance, criticExplainedVariance),
          (.criticExplainedVarianceBefore, criticExplainedVarianceBefore)],
         [(.advClippedFraction, advClippedFraction), (.ratioClippedFraction, ratioClippedFraction), (.weightMean, weightMean), (.weightMax, weightMax), (.w2, w2),
          (.covWRt, covWRt), (.gradCosine, gradCosine), (.actorSteps, actorSteps.map(Double.init)),
          (.onpolicyRatioMaxDev, onpolicyRatioMaxDev), (.loss, loss), (.gradNorm, gradNorm), (.keptFraction, keptFraction),
          (.clipRange, clipRange), (.klRef, klRef), (.gradSignal, gradSignal), (.gradNoise, gradNoise)])
    }

    private var flags: [(CodingKeys, Bool?)] { [(.criticInUse, criticInUse), (.warmup, warmup)] }

    /// The scalars of this line, by JSON key, in the line's order (nested scorer means as
    /// "rewards/NAME", critic_in_use as 0/1); what a chart or another logger reads.
    public var scalars: [(String, Double)] {
        func present(_ run: [(CodingKeys, Double?)]) -> [(String, Double)] { run.compactMap { k, v in v.map { (k.rawValue, $0) } } }
        let (head, middle, tail) = numbers
        return present(head) + (rewards ?? [:]).sorted { $0.key < $1.key }.map { ("rewards/" + $0.key, $0.value) }
            + present(middle) + flags.compactMap { k, v in v.map { (k.rawValue, $0 ? 1.0 : 0.0) } } + present(tail)
    }

    /// The line as written (stable key order; `rewardNames` orders the scorers as the reward spec does).
    public func json(rewardNames: [String]? = nil) -> JSONValue {
        var o: [(String, JSONValue)] = [(CodingKeys.step.rawValue, .int(step)), (CodingKeys.algo.rawValue, .string(algo))]
        func add(_ run: [(CodingKeys, Double?)]) { for (k, v) in run { if let v { o.append((k.rawValue, .double(v))) } } }
        let (head, middle, tail) = numbers
        add(head)
        if let rewards {
            let names = rewardNames ?? rewards.keys.sorted()
            o.append((CodingKeys.rewards.rawValue, .object(names.compactMap { n in rewards[n].map { (n, .double($0)) } })))
        }
        add(middle)
        for (k, v) in flags { if let v { o.append((k.rawValue, .bool(v))) } }
        add(tail)
        if let timesteps { o.append((CodingKeys.timesteps.rawValue, .array(timesteps.map(\.json)))) }
        if let eval { o.append((CodingKeys.eval.rawValue, eval.json(rewardNames: rewardNames))) }
        return .object(o)
    }
}

/// Ratio statistics of one trained SDE step in one iteration (clipped-ratio algorithms).
public struct TimestepRecord: Codable, Equatable {
    public var k: Int
    public var t, ratioMean, ratioStd, logratioMean, plainLogratioMean, clipHigh, clipLow, absAdvMean, klRef: Double

    public init(k: Int, t: Double, ratioMean: Double, ratioStd: Double, logratioMean: Double, plainLogratioMean: Double,
                clipHigh: Double, clipLow: Double, absAdvMean: Double, klRef: Double) {
        self.k = k; self.t = t; self.ratioMean = ratioMean; self.ratioStd = ratioStd; self.logratioMean = logratioMean
        self.plainLogratioMean = plainLogratioMean; self.clipHigh = clipHigh; self.clipLow = clipLow
        self.absAdvMean = absAdvMean; self.klRef = klRef
    }

    enum CodingKeys: String, CodingKey {
        case k, t, ratioMean = "ratio_mean", ratioStd = "ratio_std", logratioMean = "logratio_mean"
        case plainLogratioMean = "plain_logratio_mean", clipHigh = "clip_high", clipLow = "clip_low"
        case absAdvMean = "abs_adv_mean", klRef = "kl_ref"
    }

    public var json: JSONValue {
        .object([("k", .int(k)), ("t", .double(t)), ("ratio_mean", .double(ratioMean)), ("ratio_std", .double(ratioStd)),
                 ("logratio_mean", .double(logratioMean)), ("plain_logratio_mean", .double(plainLogratioMean)),
                 ("clip_high", .double(clipHigh)), ("clip_low", .double(clipLow)),
                 ("abs_adv_mean", .double(absAdvMean)), ("kl_ref", .double(klRef))])
    }
}

/// The held-out evaluation at a logged step (GoldMetrics).
public struct EvalRecord: Codable, Equatable {
    public var proxy: Double
    public var scores: [String: Double]            // each scorer's mean on the eval images
    public var shapeEval: Double?                  // nil where the prompts are not of the shapes world
    public var shapeEvalByTask: [String: Double?]  // nil where the eval prompts have no such task
    public var fd, diversity, w2: Double
    public var grid: String                        // the grid PNG, relative to the run folder
    /// Standard errors of the gold scalars, by the names of `scalars` (per-image spread over
    /// sqrt(n); the Frechet distance's from a bootstrap over the generated images); nil in
    /// metrics written before they were logged.
    public var se: [String: Double]?
    /// The Frechet distance between two independent sets of rendered images of the same prompts
    /// and size: what the distance reads when nothing differs (its noise floor and bias).
    public var fdFloor: Double?
    /// The Frechet distance on the 21-value features (ImageFeatures.compact), and its floor: the
    /// estimate 64 samples can carry (nil in metrics written before it was logged).
    public var fd21: Double?
    public var fd21Floor: Double?
    /// The exact KL of the policy's SDE path measure to the base model's, in nats (a sum over
    /// every pixel value of every stochastic step), from SDE rollouts of the eval prompts with
    /// fixed noise (nil in metrics written before it was logged).
    public var klBase: Double?

    public init(proxy: Double, scores: [String: Double], shapeEval: Double?, shapeEvalByTask: [String: Double?],
                fd: Double, diversity: Double, w2: Double, grid: String) {
        self.proxy = proxy; self.scores = scores; self.shapeEval = shapeEval; self.shapeEvalByTask = shapeEvalByTask
        self.fd = fd; self.diversity = diversity; self.w2 = w2; self.grid = grid
    }

    enum CodingKeys: String, CodingKey {
        case proxy, scores, shapeEval = "shape_eval", shapeEvalByTask = "shape_eval_by_task", fd, diversity, w2, grid, se
        case fdFloor = "fd_floor", fd21, fd21Floor = "fd21_floor", klBase = "kl_base"
    }

    /// The gold scalars by name (what a chart or logger reads), scorers as "scores/NAME".
    public var scalars: [(String, Double)] {
        var out: [(String, Double)] = [("proxy", proxy)]
        for (n, v) in scores.sorted(by: { $0.key < $1.key }) { out.append(("scores/" + n, v)) }
        if let shapeEval { out.append(("shape_eval", shapeEval)) }
        for (task, v) in shapeEvalByTask.sorted(by: { $0.key < $1.key }) { if let v { out.append(("shape_eval_by_task/" + task, v)) } }
        return out + [("fd", fd)] + (fd21.map { [("fd21", $0)] } ?? []) + [("diversity", diversity), ("w2", w2)]
            + (klBase.map { [("kl_base", $0)] } ?? [])
    }

    public func json(rewardNames: [String]? = nil, taskOrder: [String] = ["single", "two_objects", "counting", "position"]) -> JSONValue {
        let names = rewardNames ?? scores.keys.sorted()
        let tasks = taskOrder.filter { shapeEvalByTask.keys.contains($0) } + shapeEvalByTask.keys.filter { !taskOrder.contains($0) }.sorted()
        var fields: [(String, JSONValue)] = [("proxy", .double(proxy)), ("scores", .object(names.compactMap { n in scores[n].map { (n, .double($0)) } }))]
        if let shapeEval { fields.append(("shape_eval", .double(shapeEval))) }
        // empty where the prompts are not of the shapes world
        fields.append(("shape_eval_by_task", .object(tasks.map { t in (t, shapeEvalByTask[t]!.map { JSONValue.double($0) } ?? .null) })))
        fields += [("fd", .double(fd)), ("diversity", .double(diversity)), ("w2", .double(w2)), ("grid", .string(grid))]
        return .object(fields + (fdFloor.map { [("fd_floor", JSONValue.double($0))] } ?? [])
          + (fd21.map { [("fd21", JSONValue.double($0))] } ?? []) + (fd21Floor.map { [("fd21_floor", JSONValue.double($0))] } ?? [])
          + (klBase.map { [("kl_base", JSONValue.double($0))] } ?? [])
          + (se.map { se in [("se", JSONValue.object(scalars.compactMap { k, _ in se[k].map { (k, .double($0)) } }))] } ?? []))
    }
}

/// One run's metrics.jsonl, parsed.
public struct RunMetrics {
    public var lines: [MetricsRecord]
    public init(url: URL) throws {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { throw FinetuneError("\(url.path): cannot read the metrics file") }
        lines = []
        let decoder = JSONDecoder()
        for (i, raw) in text.split(separator: "\n").enumerated() {
            do { lines.append(try decoder.decode(MetricsRecord.self, from: Data(raw.utf8))) } catch {
                throw FinetuneError("\(url.path) line \(i + 1): not a metrics line (\(Self.reason(error)))")
            }
        }
        guard !lines.isEmpty else { throw FinetuneError("\(url.path): no metrics yet") }
    }

    static func reason(_ e: Error) -> String {
        switch e {
        case DecodingError.keyNotFound(let k, _): return "no \"\(k.stringValue)\""
        case DecodingError.typeMismatch(_, let c), DecodingError.valueNotFound(_, let c):
            return "\"\(c.codingPath.map(\.stringValue).joined(separator: "."))\" has the wrong type"
        case DecodingError.dataCorrupted: return "not JSON"
        default: return "\(e)"
        }
    }

    /// (step, value) of a per-iteration number.
    public func series(_ key: KeyPath<MetricsRecord, Double?>) -> [(x: Double, y: Double)] {
        lines.compactMap { l in l[keyPath: key].map { (Double(l.step), $0) } }
    }
    /// Evaluation entries, in step order.
    public var evals: [(step: Int, eval: EvalRecord)] { lines.compactMap { l in l.eval.map { (l.step, $0) } } }
    public var algo: String { lines.first?.algo ?? "?" }
}
