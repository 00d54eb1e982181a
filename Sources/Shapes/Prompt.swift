/// One object that a prompt asks for.
public struct ObjectSpec: Equatable, Hashable, Codable, Sendable {
    public var color: ShapeColor
    public var shape: ShapeKind
    public var size: ShapeSize?          // nil: not specified (any size is right)
    public var placement: Placement?     // nil: not specified (anywhere is right)
    public init(color: ShapeColor, shape: ShapeKind, size: ShapeSize? = nil, placement: Placement? = nil) {
        self.color = color; self.shape = shape; self.size = size; self.placement = placement
    }
}

/// A parsed prompt of the shapes grammar:
///
///     single:       a [small|large] COLOR SHAPE [at the PLACEMENT] on a COLOR background
///     two objects:  a COLOR SHAPE and a COLOR SHAPE on a COLOR background
///     counting:     (one|two|three|four) COLOR SHAPE[s] on a COLOR background
///     position:     a COLOR SHAPE (on the left of|on the right of|above|below) a COLOR SHAPE on a COLOR background
public struct PromptSpec: Equatable, Hashable, Codable, Sendable {
    public var task: Task
    public var objects: [ObjectSpec]     // single/counting: 1; two objects/position: 2 (A, B)
    public var count: Int                // counting: 1...4; otherwise 1
    public var relation: Relation?       // position: A relation B
    public var background: ShapeColor

    public init(task: Task, objects: [ObjectSpec], count: Int = 1, relation: Relation? = nil, background: ShapeColor) {
        self.task = task; self.objects = objects; self.count = count; self.relation = relation; self.background = background
    }

    /// The canonical text of this prompt (parsing it gives back the same spec).
    public var text: String {
        func obj(_ o: ObjectSpec) -> String { "\(article(o.color.rawValue)) \(o.color.rawValue) \(o.shape.rawValue)" }
        let bg = "on \(article(background.rawValue)) \(background.rawValue) background"
        switch task {
        case .single:
            let o = objects[0]
            var s = ""
            if let size = o.size { s += "a \(size.rawValue) \(o.color.rawValue) \(o.shape.rawValue)" } else { s += obj(o) }
            if let p = o.placement { s += " at the \(p.rawValue)" }
            return s + " " + bg
        case .twoObjects:
            return "\(obj(objects[0])) and \(obj(objects[1])) \(bg)"
        case .counting:
            let o = objects[0]
            return "\(countWords[count - 1]) \(o.color.rawValue) \(count == 1 ? o.shape.rawValue : o.shape.plural) \(bg)"
        case .position:
            return "\(obj(objects[0])) \(relation!.rawValue) \(obj(objects[1])) \(bg)"
        }
    }
}

/// "an" before a vowel, "a" otherwise.
func article(_ word: String) -> String { "aeiou".contains(word.first ?? "x") ? "an" : "a" }

public struct PromptError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }

    /// `text` in double quotes for a one-line message: control characters escaped, and cut
    /// after 80 characters (a 1 MB line is named, not printed).
    public static func quoted(_ text: String) -> String {
        var s = ""
        for (n, ch) in text.unicodeScalars.enumerated() {
            if n == 80 { s += "... (\(text.unicodeScalars.count) characters)"; break }
            s += ch.properties.generalCategory == .control || ch == "\u{FEFF}" ? ch.escaped(asASCII: true) : String(ch)
        }
        return "\"" + s + "\""
    }
}

extension PromptSpec {
    /// Parses a prompt. An unknown word is an error naming it and listing the vocabulary;
    /// known words in an order the grammar does not allow are an error saying what was expected.
    public init(parsing prompt: String) throws {
        let words = try Tokenizer.words(of: prompt)
        var p = Parser(words: words, prompt: prompt)
        self = try p.parse()
    }
}

private struct Parser {
    let words: [String]
    let prompt: String
    var i = 0

    init(words: [String], prompt: String) { self.words = words; self.prompt = prompt }

    var peek: String? { i < words.count ? words[i] : nil }
    func peek(_ k: Int) -> String? { i + k < words.count ? words[i + k] : nil }

    func fail(_ expected: String) -> PromptError {
        let at = peek.map { PromptError.quoted($0) } ?? "the end of the prompt"
        return PromptError("cannot parse \(PromptError.quoted(prompt)): expected \(expected) at word \(i + 1) (\(at))")
    }
    mutating func expect(_ w: String) throws {
        if w == "a", peek == "an" { i += 1; return }     // the article: "a" or "an"
        guard peek == w else { throw fail("'\(w)'") }
        i += 1
    }
    mutating func color() throws -> ShapeColor {
        guard let w = peek, let c = ShapeColor(rawValue: w) else {
            throw fail("a colour (\(ShapeColor.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        i += 1; return c
    }
    mutating func shape(plural: Bool) throws -> ShapeKind {
        guard let w = peek, let s = ShapeKind.allCases.first(where: { (plural ? $0.plural : $0.rawValue) == w }) else {
            throw fail(plural ? "a plural shape (circles, squares, triangles)" : "a shape (circle, square, triangle)")
        }
        i += 1; return s
    }
    mutating func background() throws -> ShapeColor {
        try expect("on"); try expect("a")
        let c = try color()
        try expect("background")
        guard peek == nil else { throw fail("the end of the prompt") }
        return c
    }

    mutating func parse() throws -> PromptSpec {
        guard let first = peek else { throw PromptError("empty prompt") }
        if let n = countWords.firstIndex(of: first) {
            i += 1
            let c = try color()
            let s = try shape(plural: n > 0)
            return PromptSpec(task: .counting, objects: [ObjectSpec(color: c, shape: s)], count: n + 1, background: try background())
        }
        try expect("a")
        var size: ShapeSize?
        if let w = peek, let s = ShapeSize(rawValue: w) { size = s; i += 1 }
        let a = ObjectSpec(color: try color(), shape: try shape(plural: false), size: size)
        switch peek {
        case "and" where size == nil:
            i += 1; try expect("a")
            let b = ObjectSpec(color: try color(), shape: try shape(plural: false))
            return PromptSpec(task: .twoObjects, objects: [a, b], background: try background())
        case "above" where size == nil, "below" where size == nil:
            let rel: Relation = peek == "above" ? .above : .below
            i += 1
            return try relational(a, rel)
        case "on" where size == nil && peek(1) == "the":
            i += 2
            guard let side = peek, side == "left" || side == "right" else { throw fail("'left' or 'right'") }
            i += 1; try expect("of")
            return try relational(a, side == "left" ? .leftOf : .rightOf)
        case "at":
            i += 1; try expect("the")
            var place: Placement?
            if peek == "center" { place = .center; i += 1 } else {
                guard let v = peek, v == "top" || v == "bottom" else { throw fail("'top', 'bottom' or 'center'") }
                i += 1
                guard let h = peek, h == "left" || h == "right" else { throw fail("'left' or 'right'") }
                i += 1
                place = Placement(rawValue: "\(v) \(h)")
            }
            var o = a; o.placement = place
            return PromptSpec(task: .single, objects: [o], background: try background())
        default:
            return PromptSpec(task: .single, objects: [a], background: try background())
        }
    }

    mutating func relational(_ a: ObjectSpec, _ rel: Relation) throws -> PromptSpec {
        try expect("a")
        let b = ObjectSpec(color: try color(), shape: try shape(plural: false))
        return PromptSpec(task: .position, objects: [a, b], relation: rel, background: try background())
    }
}

/// A prompt as it travels through flowtune, read once: its text (what a person and an external
/// scorer see), its meaning (what the checker scores against: nil for a prompt of a model
/// trained on a folder of images) and its token ids (what the network reads).
public struct Prompt: Hashable, Sendable, CustomStringConvertible {
    public let text: String
    public let spec: PromptSpec?
    public let tokens: [Int32]
    /// Words the vocabulary has no id for (read as UNK; always empty for the shapes grammar).
    public let unknownWords: [String]

    /// Parses and tokenises `text` in the shapes grammar; a prompt outside the grammar or
    /// vocabulary is an error.
    public init(_ text: String) throws {
        self.text = text
        spec = try PromptSpec(parsing: text)
        tokens = try Tokenizer.encode(text)
        unknownWords = []
    }

    /// Tokenises free text with a vocabulary built from captions: words it lacks read as UNK,
    /// words past its text length are cut. A text without a word is an error.
    public init(_ text: String, vocabulary: WordVocabulary) throws {
        self.text = text
        spec = nil
        (tokens, unknownWords, _) = try vocabulary.encode(text)
    }

    /// The parsed prompt, for what only the shapes world's checker can score (`what` names it
    /// in the error a free-text prompt gets).
    public func shapesSpec(for what: String) throws -> PromptSpec {
        guard let spec else {
            throw PromptError("\(what) scores prompts of the shapes world; \(PromptError.quoted(text)) is a prompt of a model trained on a folder of images (use a scorer that reads any image: brightness, saturation, jpeg-compressibility, external:COMMAND)")
        }
        return spec
    }

    public var description: String { text }
}

extension Array where Element == Prompt {
    /// The token ids of every prompt, one after another: (count, L).
    public var tokens: [Int32] { flatMap(\.tokens) }
}
