/// The vocabulary of a model trained on a folder of captioned images: word-level, built from
/// the captions. A word is a maximal run of letters and digits, lower-cased (punctuation and
/// spaces separate words and are dropped: "flag: France" reads "flag", "france"). Id 0 is PAD,
/// 1 NULL (the unconditional prompt), 2 UNK (a word the captions had fewer than `minCount`
/// times, or never); the words follow in order of frequency, ties alphabetically.
public struct WordVocabulary: Codable, Equatable, Sendable {
    public static let pad: Int32 = 0, null: Int32 = 1, unknown: Int32 = 2
    public static let firstWordID = 3

    public var words: [String]
    /// Tokens the network reads: the longest caption's word count, up to the cap it was built with.
    public var textLength: Int
    /// The fewest times a word appeared in the captions to get an id of its own.
    public var minCount: Int

    public init(words: [String], textLength: Int, minCount: Int) {
        self.words = words; self.textLength = textLength; self.minCount = minCount
        ids = Self.index(words)
    }

    /// PAD + NULL + UNK + the words.
    public var size: Int { words.count + Self.firstWordID }

    /// The largest text length a vocabulary is built with.
    public static let maxTextLength = 64

    /// The vocabulary of `captions`: every word seen at least `minCount` times; the text length
    /// is the longest caption's word count, at most `maxLength` (longer captions are cut).
    public static func build(captions: [String], minCount: Int, maxLength: Int) -> WordVocabulary {
        var counts: [String: Int] = [:]
        var longest = 1
        for c in captions {
            let ws = words(of: c)
            longest = max(longest, ws.count)
            for w in ws { counts[w, default: 0] += 1 }
        }
        let kept = counts.filter { $0.value >= minCount }.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.map(\.key)
        return WordVocabulary(words: kept, textLength: min(longest, maxLength), minCount: minCount)
    }

    /// The words of a text: maximal runs of letters and digits, lower-cased.
    public static func words(of text: String) -> [String] {
        var out: [String] = [], current = ""
        for ch in text.lowercased() {
            if ch.isLetter || ch.isNumber { current.append(ch) } else if !current.isEmpty { out.append(current); current = "" }
        }
        if !current.isEmpty { out.append(current) }
        return out
    }

    /// A text's token ids padded with PAD to `textLength`, the words it has no id for (read as
    /// UNK), and how many words past `textLength` were cut. A text without a word is an error.
    public func encode(_ text: String) throws -> (tokens: [Int32], unknown: [String], cut: Int) {
        let ws = Self.words(of: text)
        guard !ws.isEmpty else { throw PromptError("\(PromptError.quoted(text)) has no word (a word is a run of letters or digits)") }
        var tokens: [Int32] = [], unknown: [String] = []
        for w in ws.prefix(textLength) {
            if let id = ids[w] { tokens.append(id) } else { tokens.append(Self.unknown); unknown.append(w) }
        }
        return (tokens + [Int32](repeating: Self.pad, count: textLength - tokens.count), unknown, max(0, ws.count - textLength))
    }

    private var ids: [String: Int32]
    static func index(_ words: [String]) -> [String: Int32] {
        Dictionary(words.enumerated().map { ($1, Int32($0 + firstWordID)) }, uniquingKeysWith: { a, _ in a })
    }

    enum CodingKeys: String, CodingKey { case words, textLength = "text_length", minCount = "min_count" }
    public init(from decoder: Decoder) throws {
        let k = try decoder.container(keyedBy: CodingKeys.self)
        self.init(words: try k.decode([String].self, forKey: .words), textLength: try k.decode(Int.self, forKey: .textLength),
                  minCount: try k.decode(Int.self, forKey: .minCount))
    }
    public func encode(to encoder: Encoder) throws {
        var k = encoder.container(keyedBy: CodingKeys.self)
        try k.encode(words, forKey: .words); try k.encode(textLength, forKey: .textLength); try k.encode(minCount, forKey: .minCount)
    }
    public static func == (a: Self, b: Self) -> Bool { a.words == b.words && a.textLength == b.textLength && a.minCount == b.minCount }

    /// Checks a vocabulary read from a file: sizes in range, words unique, non-empty and of letters and digits.
    public func validate() throws {
        guard (1...Self.maxTextLength).contains(textLength) else { throw PromptError("the vocabulary's text length \(textLength) is outside 1...\(Self.maxTextLength)") }
        guard minCount >= 1 else { throw PromptError("the vocabulary's minimum count \(minCount) is below 1") }
        guard ids.count == words.count else { throw PromptError("the vocabulary lists a word twice") }
        if let w = words.first(where: { Self.words(of: $0) != [$0] }) { throw PromptError("the vocabulary's word \(PromptError.quoted(w)) is not a lower-case word") }
    }
}

/// What a model reads its prompts with: the shapes world's grammar (a fixed vocabulary, an
/// unknown word an error, every prompt parsed for the checker) or a vocabulary built from the
/// captions of an image folder (any text; unknown words read as UNK).
public enum TextVocabulary: Equatable, Sendable {
    case shapes
    case words(WordVocabulary)

    public var size: Int {
        switch self { case .shapes: Tokenizer.vocabularySize; case .words(let v): v.size }
    }
    public var textLength: Int {
        switch self { case .shapes: Tokenizer.maxTokens; case .words(let v): v.textLength }
    }

    /// `text` as a prompt of this vocabulary.
    public func prompt(_ text: String) throws -> Prompt {
        switch self {
        case .shapes: try Prompt(text)
        case .words(let v): try Prompt(text, vocabulary: v)
        }
    }
}
