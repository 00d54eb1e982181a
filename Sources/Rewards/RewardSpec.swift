import Imaging
import Shapes
/// A weighted combination of scorers: reward = sum_k weight_k * scorer_k. A scorer with weight 0
/// is computed and logged but not optimised (a gold metric riding along).
public final class CombinedReward {
    public let terms: [(scorer: RewardScorer, weight: Float)]
    public init(terms: [(scorer: RewardScorer, weight: Float)]) { self.terms = terms }

    /// The spec as written: "shape-eval=1,jpeg-compressibility=0".
    public var spec: String { terms.map { "\($0.scorer.name)=\($0.weight)" }.joined(separator: ",") }
    public var names: [String] { terms.map(\.scorer.name) }
    /// The scorers with a non-zero weight (the rest are gold metrics riding along).
    public var optimisedNames: Set<String> { Set(terms.filter { $0.weight != 0 }.map(\.scorer.name)) }

    /// Parses "name[=weight],name[=weight],..."; a bare name has weight 1. Names: brightness,
    /// saturation, shape-eval, shape-soft, jpeg-compressibility, jpeg-incompressibility, external:COMMAND.
    public convenience init(parsing text: String, externalTimeout: Double = 30) throws {
        var terms: [(RewardScorer, Float)] = []
        let known = "brightness, saturation, shape-eval, shape-soft, jpeg-compressibility, jpeg-incompressibility, external:COMMAND"
        guard !text.trimmingCharacters(in: .whitespaces).isEmpty else { throw RewardError("empty reward spec; give e.g. \"shape-eval=1\" (scorers: \(known))") }
        for raw in Self.splitTerms(text) {
            let part = raw.trimmingCharacters(in: .whitespaces)
            guard !part.isEmpty else { throw RewardError("reward spec \"\(text)\": empty term") }
            var name = part, weight: Float = 1
            if let eq = part.lastIndex(of: "="), !part.hasPrefix("external:") || part[eq...].dropFirst().allSatisfy({ "0123456789.-+e".contains($0) }) {
                name = String(part[..<eq]).trimmingCharacters(in: .whitespaces)
                let w = String(part[part.index(after: eq)...]).trimmingCharacters(in: .whitespaces)
                guard let v = Float(w), v.isFinite else { throw RewardError("reward spec \"\(text)\": weight '\(w)' of \(name) is not a finite number") }
                guard v >= 0 else {
                    throw RewardError("reward spec \"\(text)\": weight \(w) of \(name) is negative; weights are >= 0 (every scorer counts higher as better; 0 logs a scorer without optimising it)")
                }
                weight = v
            }
            let scorer: RewardScorer
            switch name {
            case "brightness": scorer = BrightnessScorer()
            case "saturation": scorer = SaturationScorer()
            case "shape-eval": scorer = ShapeEvalScorer()
            case "shape-soft": scorer = ShapeEvalScorer(soft: true)
            case "jpeg-compressibility": scorer = JPEGScorer(compressible: true)
            case "jpeg-incompressibility": scorer = JPEGScorer(compressible: false)
            default:
                if name.hasPrefix("external:") {
                    let cmd = String(name.dropFirst("external:".count)).trimmingCharacters(in: .whitespaces)
                    guard !cmd.isEmpty else { throw RewardError("reward spec \"\(text)\": external: needs a command") }
                    scorer = ExternalScorer(command: cmd, timeout: externalTimeout)
                } else {
                    throw RewardError("unknown reward '\(name)'; known scorers: \(known)")
                }
            }
            guard !terms.contains(where: { $0.0.name == scorer.name }) else { throw RewardError("reward spec \"\(text)\": \(scorer.name) appears twice") }
            terms.append((scorer, weight))
        }
        guard terms.contains(where: { $0.1 != 0 }) else { throw RewardError("reward spec \"\(text)\": every weight is 0, nothing to optimise") }
        self.init(terms: terms)
    }

    /// Splits on commas outside an external command's quotes.
    static func splitTerms(_ text: String) -> [String] {
        var out: [String] = [], cur = "", quote: Character?
        for ch in text {
            if let q = quote { if ch == q { quote = nil }; cur.append(ch); continue }
            if ch == "\"" || ch == "'" { quote = ch; cur.append(ch); continue }
            if ch == "," { out.append(cur); cur = ""; continue }
            cur.append(ch)
        }
        out.append(cur)
        return out
    }

    /// Every scorer's values (by name) and the weighted total, per image.
    public func evaluate(_ images: ImageBatch, prompts: [Prompt]) throws -> (total: [Float], byScorer: [String: [Float]]) {
        var total = [Float](repeating: 0, count: images.count)
        var by: [String: [Float]] = [:]
        for (scorer, weight) in terms {
            let s = try scorer.score(images, prompts: prompts)
            guard s.count == images.count else { throw RewardError("\(scorer.name): returned \(s.count) values for \(images.count) images") }
            if let bad = s.firstIndex(where: { !$0.isFinite }) { throw RewardError("\(scorer.name): non-finite reward \(s[bad]) for image \(bad)") }
            by[scorer.name] = s
            for i in total.indices { total[i] += weight * s[i] }
        }
        return (total, by)
    }
}

import Foundation
