import Foundation
import Tensor
import Shapes

/// What one iteration of an algorithm measured, in the order the algorithm lists them: the
/// loop writes them into metrics.jsonl after its own fields, and TensorBoard (train/NAME), the
/// report's table of training metrics and any chart read them by name. A new metric is a line
/// in the algorithm's `train`.
public struct AlgorithmMetrics: Equatable, Sendable {
    public var scalars = Scalars()
    /// The names among `scalars` that are yes/no (1/0): JSON true/false.
    public var flags: Set<String> = []
    /// Statistics per trained SDE step ("k" and "t" first), where the algorithm has them.
    public var steps: [Scalars]? = nil

    public init() {}

    public subscript(name: String) -> Double? {
        get { scalars[name] }
        set { scalars[name] = newValue }
    }
    /// Sets a yes/no metric.
    public mutating func set(_ name: String, _ flag: Bool) {
        scalars[name] = flag ? 1 : 0
        flags.insert(name)
    }
}

/// A gold metric of the evaluation: a measurement of the eval images that the run does not
/// optimise (or, for a scorer of the reward, does). Its `id` is its key in metrics.jsonl's eval
/// object and in the standard errors, and its TensorBoard tag (eval/ID); `name` is what charts
/// and tables show.
public struct GoldMetric: Hashable, Sendable, CustomStringConvertible {
    public let id: String
    public let name: String
    public let unit: String
    public let higherIsBetter: Bool
    /// A distance from the base model (w2, the KL): it grows whenever the policy moves, so it
    /// marks drift, not a fall in quality (no onset, no frontier panel).
    public let measuresDistance: Bool
    /// One part of another metric (shape-eval of one task type): tables show it, the drift
    /// analysis does not track it apart.
    public let isBreakdown: Bool
    public var description: String { name }

    init(_ id: String, _ name: String, unit: String, higherIsBetter: Bool = true, distance: Bool = false, breakdown: Bool = false) {
        self.id = id; self.name = name; self.unit = unit; self.higherIsBetter = higherIsBetter
        measuresDistance = distance; isBreakdown = breakdown
    }

    /// The rule-based checker on the eval prompts (shapes-world prompts only).
    public static let shapeEval = GoldMetric("shape_eval", "shape-eval", unit: "fraction correct")
    /// The checker on the eval prompts of one task type.
    public static func task(_ t: Task) -> GoldMetric {
        GoldMetric("shape_eval_by_task/" + t.rawValue, t.rawValue.replacingOccurrences(of: "_", with: " "), unit: "fraction correct", breakdown: true)
    }
    /// The pass rate of one kind of requirement of one task type ("counting/count",
    /// "two_objects/extra"), by the strict checker, whose requirements are the lenient one's
    /// and "extra" (nothing but the asked objects drawn).
    public static func requirement(_ key: String) -> GoldMetric {
        GoldMetric(requirementPrefix + key, key.replacingOccurrences(of: "/", with: " / "), unit: "pass rate", breakdown: true)
    }
    /// The ids' prefix of the requirements' pass rates (before "TASK/KIND").
    public static let requirementPrefix = "shape_eval_by_requirement/"
    /// Whether this is a requirement's pass rate (`requirement(_:)`).
    public var isRequirement: Bool { id.hasPrefix(Self.requirementPrefix) }
    /// A scorer of the reward, on the eval images (a gold metric where its weight is 0).
    public static func scorer(_ name: String) -> GoldMetric { GoldMetric("scores/" + name, name, unit: "score") }
    public static let fd = GoldMetric("fd", "frechet distance", unit: "FD of features", higherIsBetter: false)
    public static let fd21 = GoldMetric("fd21", "frechet distance 21-d", unit: "FD of 21 features", higherIsBetter: false)
    public static let diversity = GoldMetric("diversity", "diversity", unit: "mean feature distance")
    public static let w2 = GoldMetric("w2", "w2 to base", unit: "mean sq. velocity diff.", higherIsBetter: false, distance: true)
    public static let klBase = GoldMetric("kl_base", "KL to base", unit: "nats (SDE path)", higherIsBetter: false, distance: true)
}

/// The held-out evaluation at a logged step (GoldMetrics.evaluate): the proxy, every scorer of
/// the reward, and the gold metrics, each with its standard error.
public struct EvalRecord: Equatable, Sendable {
    public var proxy: Double
    public var scores: [String: Double]            // each scorer's mean on the eval images
    public var shapeEval: Double?                  // nil where the prompts are not of the shapes world
    public var shapeEvalByTask: [String: Double?]  // nil where the eval prompts have no such task
    /// The pass rate of each kind of requirement per task type ("counting/count"), by the
    /// strict checker (GoldMetric.requirement); empty where the prompts are not of the shapes world.
    public var shapeEvalByRequirement: [String: Double] = [:]
    public var fd, diversity, w2: Double
    public var grid: String                        // the grid PNG, relative to the run folder
    /// Standard errors by metric id ("proxy", GoldMetric.id): the per-image spread over sqrt(n)
    /// (over prompts for diversity; the Frechet distance's from a bootstrap over the images).
    public var se: [String: Double] = [:]
    /// The Frechet distance between two independent sets of rendered images of the same prompts
    /// and size: what the distance reads when nothing differs (its noise floor and bias).
    public var fdFloor: Double?
    /// The Frechet distance on the 21-value features (ImageFeatures.compact), and its floor.
    public var fd21: Double?
    public var fd21Floor: Double?
    /// The exact KL of the policy's SDE path measure to the base model's, in nats (a sum over
    /// every pixel value of every stochastic step), from SDE rollouts of the eval prompts with
    /// fixed noise.
    public var klBase: Double?
    /// Standard errors of each per-image metric's change since the run's start (step 0), paired
    /// over the same eval images and noise: the spread of the per-image differences over sqrt(n).
    /// By id as `se` ("proxy", "shape_eval", its tasks, "scores/NAME"); empty at step 0.
    public var changeSE: [String: Double] = [:]

    public init(proxy: Double, scores: [String: Double], shapeEval: Double?, shapeEvalByTask: [String: Double?],
                fd: Double, diversity: Double, w2: Double, grid: String) {
        self.proxy = proxy; self.scores = scores; self.shapeEval = shapeEval; self.shapeEvalByTask = shapeEvalByTask
        self.fd = fd; self.diversity = diversity; self.w2 = w2; self.grid = grid
    }

    /// The value of a gold metric, where this evaluation has it.
    public func value(_ m: GoldMetric) -> Double? {
        switch m.id {
        case GoldMetric.shapeEval.id: return shapeEval
        case GoldMetric.fd.id: return fd
        case GoldMetric.fd21.id: return fd21
        case GoldMetric.diversity.id: return diversity
        case GoldMetric.w2.id: return w2
        case GoldMetric.klBase.id: return klBase
        default:
            if m.id.hasPrefix("scores/") { return scores[String(m.id.dropFirst("scores/".count))] }
            if m.id.hasPrefix("shape_eval_by_task/") { return shapeEvalByTask[String(m.id.dropFirst("shape_eval_by_task/".count))] ?? nil }
            if m.isRequirement { return shapeEvalByRequirement[String(m.id.dropFirst(GoldMetric.requirementPrefix.count))] }
            return nil
        }
    }

    /// Every gold metric this evaluation has, in the order tables show them: shape-eval, its
    /// task types and requirements, each scorer of the reward (but shape-eval, shown as the
    /// checker), the Frechet distances, diversity, and the distances from the base model.
    public var metrics: [GoldMetric] {
        var out: [GoldMetric] = []
        if shapeEval != nil { out.append(.shapeEval) }
        out += Task.allCases.filter { shapeEvalByTask[$0.rawValue] != nil }.map(GoldMetric.task)
        out += shapeEvalByRequirement.keys.sorted().map(GoldMetric.requirement)
        out += scores.keys.sorted().filter { $0 != GoldMetric.shapeEval.name }.map(GoldMetric.scorer)
        out += [GoldMetric.fd] + (fd21 != nil ? [GoldMetric.fd21] : []) + [GoldMetric.diversity, GoldMetric.w2] + (klBase != nil ? [GoldMetric.klBase] : [])
        return out
    }

    /// The proxy and every gold value by id, in order (what TensorBoard and charts read);
    /// a scorer of the reward that is shape-eval appears as scores/shape-eval too.
    public var scalars: [(String, Double)] {
        var out: [(String, Double)] = [("proxy", proxy)]
        for (n, v) in scores.sorted(by: { $0.key < $1.key }) where n == GoldMetric.shapeEval.name { out.append((GoldMetric.scorer(n).id, v)) }
        return out + metrics.compactMap { m in value(m).map { (m.id, $0) } }
    }

    public func json(rewardNames: [String]? = nil) -> JSONValue {
        let names = rewardNames ?? scores.keys.sorted()
        let tasks = Task.allCases.map(\.rawValue).filter { shapeEvalByTask.keys.contains($0) }
        var fields: [(String, JSONValue)] = [("proxy", .double(proxy)), ("scores", .object(names.compactMap { n in scores[n].map { (n, .double($0)) } }))]
        if let shapeEval { fields.append(("shape_eval", .double(shapeEval))) }
        // empty where the prompts are not of the shapes world
        fields.append(("shape_eval_by_task", .object(tasks.map { t in (t, shapeEvalByTask[t]!.map { JSONValue.double($0) } ?? .null) })))
        if !shapeEvalByRequirement.isEmpty {
            fields.append(("shape_eval_by_requirement", .object(shapeEvalByRequirement.sorted { $0.key < $1.key }.map { ($0.key, .double($0.value)) })))
        }
        fields += [("fd", .double(fd)), ("diversity", .double(diversity)), ("w2", .double(w2)), ("grid", .string(grid))]
        return .object(fields + (fdFloor.map { [("fd_floor", JSONValue.double($0))] } ?? [])
          + (fd21.map { [("fd21", JSONValue.double($0))] } ?? []) + (fd21Floor.map { [("fd21_floor", JSONValue.double($0))] } ?? [])
          + (klBase.map { [("kl_base", JSONValue.double($0))] } ?? [])
          + [("se", JSONValue.object(scalars.compactMap { k, _ in se[k].map { (k, .double($0)) } }))]
          + (changeSE.isEmpty ? [] : [("change_se", JSONValue.object(scalars.compactMap { k, _ in changeSE[k].map { (k, .double($0)) } }))]))
    }

    /// Reads an eval object of metrics.jsonl (older lines lack the later fields: nil).
    public init(json o: JSONValue) throws {
        func number(_ k: String) throws -> Double {
            guard let v = o[k]?.number else { throw AnalysisError("eval has no number \"\(k)\"") }
            return v
        }
        guard case .object(let scoreList)? = o["scores"], case .string(let grid)? = o["grid"] else { throw AnalysisError("eval lacks \"scores\" or \"grid\"") }
        var byTask: [String: Double?] = [:]
        if case .object(let t)? = o["shape_eval_by_task"] { for (k, v) in t { byTask[k] = v.number } }
        self.init(proxy: try number("proxy"), scores: Dictionary(scoreList.compactMap { k, v in v.number.map { (k, $0) } }, uniquingKeysWith: { a, _ in a }),
                  shapeEval: o["shape_eval"]?.number, shapeEvalByTask: byTask,
                  fd: try number("fd"), diversity: try number("diversity"), w2: try number("w2"), grid: grid)
        fdFloor = o["fd_floor"]?.number; fd21 = o["fd21"]?.number; fd21Floor = o["fd21_floor"]?.number; klBase = o["kl_base"]?.number
        if case .object(let r)? = o["shape_eval_by_requirement"] { for (k, v) in r { shapeEvalByRequirement[k] = v.number } }
        if case .object(let s)? = o["se"] { for (k, v) in s { se[k] = v.number } }
        if case .object(let s)? = o["change_se"] { for (k, v) in s { changeSE[k] = v.number } }
    }
}

/// A metrics file, a best-of-n file or a run folder that cannot be read as one.
public struct AnalysisError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// One line of metrics.jsonl: the loop's fields (rewards, times, memory), the algorithm's own
/// metrics (`AlgorithmMetrics`), and at evaluated steps the evaluation. Fields an iteration does
/// not have (everything but `eval` on the step-0 line) are nil and left out of the line. Lines
/// are written with a fixed key order and 6 significant digits.
public struct MetricsRecord: Equatable, Sendable {
    public var step: Int
    public var algo: Algorithm
    // the loop's, every training iteration
    public var rewardMean, rewardStd: Double?
    public var rewards: [String: Double]?         // each scorer's batch mean (weight 0 included)
    public var seconds, rolloutSeconds, rewardSeconds, trainSeconds, lr: Double?
    public var peakRSSMB: Double?                 // the process's peak resident memory so far, MiB
    // the algorithm's
    public var algorithm = AlgorithmMetrics()
    // every --eval-every iterations and at step 0
    public var eval: EvalRecord?

    public init(step: Int, algo: Algorithm) { self.step = step; self.algo = algo }

    /// The loop's numbers by JSON key, in the line's order: the two before the scorers' means, then the rest.
    var loopNumbers: (head: [(String, Double?)], tail: [(String, Double?)]) {
        ([("reward_mean", rewardMean), ("reward_std", rewardStd)],
         [("seconds", seconds), ("rollout_seconds", rolloutSeconds), ("reward_seconds", rewardSeconds), ("train_seconds", trainSeconds),
          ("lr", lr), ("peak_rss_mb", peakRSSMB)])
    }
    static let loopKeys: Set<String> = ["step", "algo", "reward_mean", "reward_std", "rewards", "seconds", "rollout_seconds", "reward_seconds",
                                        "train_seconds", "lr", "peak_rss_mb", "timesteps", "eval"]

    /// A per-iteration number by its JSON key: the loop's, "rewards/NAME", or the algorithm's.
    public subscript(key: String) -> Double? {
        if let v = (loopNumbers.head + loopNumbers.tail).first(where: { $0.0 == key }) { return v.1 }
        if key.hasPrefix("rewards/") { return rewards?[String(key.dropFirst("rewards/".count))] }
        return algorithm[key]
    }

    /// The scalars of this line, by JSON key, in the line's order (scorer means as
    /// "rewards/NAME", flags as 0/1); what a chart or another logger reads.
    public var scalars: [(String, Double)] {
        func present(_ run: [(String, Double?)]) -> [(String, Double)] { run.compactMap { k, v in v.map { (k, $0) } } }
        return present(loopNumbers.head) + (rewards ?? [:]).sorted { $0.key < $1.key }.map { ("rewards/" + $0.key, $0.value) }
            + present(loopNumbers.tail) + algorithm.scalars.map { ($0.name, $0.value) }
    }

    /// The line as written (stable key order; `rewardNames` orders the scorers as the reward spec does).
    public func json(rewardNames: [String]? = nil) -> JSONValue {
        var o: [(String, JSONValue)] = [("step", .int(step)), ("algo", .string(algo.rawValue))]
        func present(_ run: [(String, Double?)]) -> [(String, JSONValue)] { run.compactMap { k, v in v.map { (k, .double($0)) } } }
        o += present(loopNumbers.head)
        if let rewards {
            let names = rewardNames ?? rewards.keys.sorted()
            o.append(("rewards", .object(names.compactMap { n in rewards[n].map { (n, .double($0)) } })))
        }
        o += present(loopNumbers.tail)
        for (name, v) in algorithm.scalars { o.append((name, algorithm.flags.contains(name) ? .bool(v != 0) : .double(v))) }
        if let steps = algorithm.steps {
            o.append(("timesteps", .array(steps.map { s in .object(s.map { ($0.name, $0.name == "k" ? .int(Int($0.value)) : .double($0.value)) }) })))
        }
        if let eval { o.append(("eval", eval.json(rewardNames: rewardNames))) }
        return .object(o)
    }

    /// Reads a line: the loop's keys by name, every other number or flag as the algorithm's.
    public init(json o: JSONValue) throws {
        guard case .object(let fields) = o else { throw AnalysisError("not a JSON object") }
        guard let step = o["step"]?.number.map(Int.init) else { throw AnalysisError("no \"step\"") }
        guard case .string(let name)? = o["algo"] else { throw AnalysisError("no \"algo\"") }
        guard let algo = Algorithm(rawValue: name) else { throw AnalysisError("unknown algorithm \"\(name)\"") }
        self.init(step: step, algo: algo)
        rewardMean = o["reward_mean"]?.number; rewardStd = o["reward_std"]?.number
        seconds = o["seconds"]?.number; rolloutSeconds = o["rollout_seconds"]?.number; rewardSeconds = o["reward_seconds"]?.number
        trainSeconds = o["train_seconds"]?.number; lr = o["lr"]?.number; peakRSSMB = o["peak_rss_mb"]?.number
        if case .object(let r)? = o["rewards"] { rewards = Dictionary(r.compactMap { k, v in v.number.map { (k, $0) } }, uniquingKeysWith: { a, _ in a }) }
        for (k, v) in fields where !Self.loopKeys.contains(k) {
            if case .bool(let b) = v { algorithm.set(k, b) } else if let x = v.number { algorithm[k] = x }
        }
        if case .array(let steps)? = o["timesteps"] {
            algorithm.steps = steps.map { s in
                guard case .object(let f) = s else { return Scalars() }
                return Scalars(f.compactMap { k, v in v.number.map { (k, $0) } })
            }
        }
        if let e = o["eval"] {
            do { eval = try EvalRecord(json: e) } catch { throw AnalysisError("\"eval\": \(error)") }
        }
    }
}

/// One run's metrics.jsonl, parsed.
public struct RunMetrics {
    public var lines: [MetricsRecord]
    public init(url: URL) throws {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { throw AnalysisError("\(url.path): cannot read the metrics file") }
        lines = []
        for (i, raw) in text.split(separator: "\n").enumerated() {
            do { lines.append(try MetricsRecord(json: try JSONValue.parse(String(raw)))) } catch {
                throw AnalysisError("\(url.path) line \(i + 1): not a metrics line (\(error))")
            }
        }
        guard !lines.isEmpty else { throw AnalysisError("\(url.path): no metrics yet") }
    }
    public init(lines: [MetricsRecord]) { self.lines = lines }

    /// (step, value) of a per-iteration number, by its JSON key.
    public func series(_ key: String) -> [(x: Double, y: Double)] {
        lines.compactMap { l in l[key].map { (Double(l.step), $0) } }
    }
    /// Evaluation entries, in step order.
    public var evals: [(step: Int, eval: EvalRecord)] { lines.compactMap { l in l.eval.map { (l.step, $0) } } }
    public var algo: Algorithm? { lines.first?.algo }
    /// Every gold metric of the evaluations, in the order they list them (first seen first).
    public var goldMetrics: [GoldMetric] {
        var seen: [GoldMetric] = []
        for e in evals { for g in e.eval.metrics where !seen.contains(g) { seen.append(g) } }
        return seen
    }
    /// The algorithm's metric names, in the order its lines list them (first seen first).
    public var algorithmMetricNames: [String] {
        var seen: [String] = []
        for l in lines { for (n, _) in l.algorithm.scalars where !seen.contains(n) { seen.append(n) } }
        return seen
    }
}
