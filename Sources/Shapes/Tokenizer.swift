/// Word-level tokenizer over the fixed vocabulary of the shapes grammar.
/// Id 0 is PAD, id 1 is NULL (the unconditional prompt for classifier-free guidance).
public enum Tokenizer {
    public static let pad: Int32 = 0
    public static let null: Int32 = 1
    public static let maxTokens = 16

    /// Every word, in id order (ids 2...).
    public static let words: [String] = {
        var w = ["a", "an", "the", "of", "at", "on", "and", "background", "above", "below", "left", "right",
                 "top", "bottom", "center"]
        w += ShapeSize.allCases.map(\.rawValue)
        w += ShapeColor.allCases.map(\.rawValue)
        w += ShapeKind.allCases.map(\.rawValue) + ShapeKind.allCases.map(\.plural)
        w += countWords
        return w
    }()
    static let ids: [String: Int32] = Dictionary(uniqueKeysWithValues: words.enumerated().map { ($1, Int32($0 + 2)) })

    /// PAD + NULL + the words.
    public static var vocabularySize: Int { words.count + 2 }

    /// The lower-cased words of a prompt; an unknown word is an error that names it and lists the vocabulary.
    public static func words(of prompt: String) throws -> [String] {
        let ws = prompt.lowercased().split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        for w in ws where ids[w] == nil {
            throw PromptError("unknown word \(PromptError.quoted(w)) in \(PromptError.quoted(prompt)); the vocabulary is: \(words.joined(separator: " "))")
        }
        return ws
    }

    /// Token ids padded with PAD to `maxTokens`. More than `maxTokens` words is an error.
    public static func encode(_ prompt: String) throws -> [Int32] {
        let ws = try words(of: prompt)
        guard !ws.isEmpty else { throw PromptError("empty prompt") }
        guard ws.count <= maxTokens else {
            throw PromptError("prompt has \(ws.count) words, more than the \(maxTokens) the model reads: \(PromptError.quoted(prompt))")
        }
        return ws.map { ids[$0]! } + [Int32](repeating: pad, count: maxTokens - ws.count)
    }

    /// The NULL prompt: [NULL, PAD x 15].
    public static var nullTokens: [Int32] { [null] + [Int32](repeating: pad, count: maxTokens - 1) }
}
