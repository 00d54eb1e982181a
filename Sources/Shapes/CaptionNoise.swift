import Tensor

/// Caption noise: the image drawn for a training prompt is that of a corrupted prompt while the
/// caption stays the original — the way web captions teach text-to-image models systematic
/// mistakes. Each kind is one habit such models show on GenEval-style prompts:
///
///     count      a counting prompt drawn with one object more or fewer (1...4)
///     relation   a position prompt drawn with the opposite relation (left <-> right, above <-> below)
///     binding    the two objects' colours exchanged (two-object and position prompts)
///     omission   the second object left out (two-object and position prompts)
///     placement  a placed single object drawn at another placement (corners go to corners)
///
/// A kind applies only where it changes what the prompt asks: exchanging two equal colours, or
/// the colours of two objects of one shape in a two-object prompt, would draw the same prompt,
/// so such prompts stay clean. Kinds are tried in the order above and at most one corrupts a
/// prompt; each kind's probability is its rate among the prompts it applies to.
public struct CaptionNoise: Equatable, Hashable, Codable, Sendable, CustomStringConvertible {
    public enum Kind: String, CaseIterable, Codable, Sendable {
        case count, relation, binding, omission, placement
    }

    /// The probability of each kind (absent: 0).
    public private(set) var rates: [Kind: Double] = [:]

    public init() {}

    /// Parses "count=0.3,relation=0.3,binding=0.3" (an empty string: no noise); errors begin
    /// with `name` (the option that gave the text, say).
    public init(parsing text: String, named name: String = "caption noise") throws {
        let known = Kind.allCases.map(\.rawValue).joined(separator: ", ")
        for raw in text.split(separator: ",", omittingEmptySubsequences: false) {
            let part = raw.trimmingCharacters(in: .whitespaces)
            if part.isEmpty && text.trimmingCharacters(in: .whitespaces).isEmpty { continue }
            let pieces = part.split(separator: "=", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard pieces.count == 2 else {
                throw PromptError("\(name) \(PromptError.quoted(text)): term \(PromptError.quoted(part)) is not KIND=PROBABILITY (kinds: \(known))")
            }
            guard let kind = Kind(rawValue: pieces[0]) else {
                throw PromptError("\(name) \(PromptError.quoted(text)): unknown kind \(PromptError.quoted(pieces[0])) (kinds: \(known))")
            }
            guard rates[kind] == nil else { throw PromptError("\(name) \(PromptError.quoted(text)): \(kind.rawValue) appears twice") }
            guard let p = Double(pieces[1]) else {
                throw PromptError("\(name) \(PromptError.quoted(text)): probability \(PromptError.quoted(pieces[1])) of \(kind.rawValue) is not a number")
            }
            try set(kind, p, name)
        }
    }

    mutating func set(_ kind: Kind, _ p: Double, _ name: String) throws {
        guard p.isFinite, p >= 0, p <= 1 else {
            throw PromptError("\(name): the probability of \(kind.rawValue) is \(p); it must be in [0, 1]")
        }
        rates[kind] = p
    }

    public var isEmpty: Bool { rates.values.allSatisfy { $0 == 0 } }

    /// The canonical spec ("count=0.3,relation=0.3"; kinds in their order, zero rates left out).
    public var description: String {
        Kind.allCases.compactMap { k in rates[k].flatMap { $0 > 0 ? "\(k.rawValue)=\($0)" : nil } }.joined(separator: ",")
    }

    // Codable as its canonical spec string, so that a model file's metadata reads as the option.
    public init(from decoder: Decoder) throws {
        self = try CaptionNoise(parsing: try decoder.singleValueContainer().decode(String.self))
    }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }

    /// The prompt to draw for the caption `spec`, and the kind of corruption (nil: drawn as
    /// captioned). Every kind's draw is made whether or not it applies, so that the stream does
    /// not depend on the prompt.
    public func corrupt(_ spec: PromptSpec, rng: inout RNG) -> (drawn: PromptSpec, kind: Kind?) {
        var result: (PromptSpec, Kind?) = (spec, nil)
        for kind in Kind.allCases {
            let u = rng.uniform(), pick = rng.nextUInt64()
            guard result.1 == nil, let p = rates[kind], Double(u) < p,
                  let drawn = Self.apply(kind, to: spec, pick: pick) else { continue }
            result = (drawn, kind)
        }
        return result
    }

    /// `spec` with corruption `kind` applied, or nil where that kind does not change what the
    /// prompt asks. `pick` chooses among the alternatives (count up or down, another placement).
    public static func apply(_ kind: Kind, to spec: PromptSpec, pick: UInt64 = 0) -> PromptSpec? {
        var out = spec
        switch kind {
        case .count:
            guard spec.task == .counting else { return nil }
            let options = [spec.count - 1, spec.count + 1].filter { (1...countWords.count).contains($0) }
            out.count = options[Int(pick % UInt64(options.count))]
        case .relation:
            guard spec.task == .position, let r = spec.relation else { return nil }
            out.relation = switch r {
            case .leftOf: .rightOf
            case .rightOf: .leftOf
            case .above: .below
            case .below: .above
            }
        case .binding:
            guard spec.task == .twoObjects || spec.task == .position else { return nil }
            let (a, b) = (spec.objects[0], spec.objects[1])
            guard a.color != b.color, spec.task == .position || a.shape != b.shape else { return nil }
            out.objects[0].color = b.color
            out.objects[1].color = a.color
        case .omission:
            guard spec.task == .twoObjects || spec.task == .position else { return nil }
            var a = spec.objects[0]
            a.size = nil; a.placement = nil
            out = PromptSpec(task: .single, objects: [a], background: spec.background)
        case .placement:
            guard spec.task == .single, let p = spec.objects[0].placement else { return nil }
            // a corner moves to another corner, the centre to a corner (a corner object drawn at
            // the centre can still fall in its quadrant, and pass)
            let others = Placement.allCases.filter { $0 != p && $0 != .center }
            out.objects[0].placement = others[Int(pick % UInt64(others.count))]
        }
        return out
    }
}
