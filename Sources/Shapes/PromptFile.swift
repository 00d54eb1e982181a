import Foundation

/// A prompt list: one prompt per line; blank lines and lines starting with '#' are skipped.
/// Lines may end in LF or CRLF, and a UTF-8 byte-order mark at the start is skipped (what
/// Windows editors write).
public struct PromptFile: Sendable {
    public var path: String
    public var entries: [Prompt]
    public var prompts: [String] { entries.map(\.text) }
    /// The parsed prompts (shapes-world files; a free-text file has none).
    public var specs: [PromptSpec] { entries.compactMap(\.spec) }
    /// Words of the prompts the vocabulary has no id for, and how often each came (free text only).
    public var unknownWords: [String: Int] {
        var counts: [String: Int] = [:]
        for e in entries { for w in e.unknownWords { counts[w, default: 0] += 1 } }
        return counts
    }

    /// Reads and parses every prompt. A missing, unreadable or empty file, an unknown word or a
    /// prompt the grammar does not allow is an error naming the file and line; with a word
    /// vocabulary any text is a prompt (its unknown words are counted in `unknownWords`).
    public init(path: String, vocabulary: TextVocabulary = .shapes) throws {
        self.path = path
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw PromptError("\(path): no such prompt file") }
        guard !isDir.boolValue else { throw PromptError("\(path): is a folder, not a prompt file") }
        let data = try Self.readBounded(path)
        guard var text = String(data: data, encoding: .utf8) else { throw PromptError("\(path): not UTF-8 text") }
        if text.unicodeScalars.first == "\u{FEFF}" { text.unicodeScalars.removeFirst() }
        entries = []
        // a line ends at "\n" ("\r\n" is one Character in Swift, so both count); a form feed or
        // another Unicode line separator inside a line is whitespace, so line numbers are an editor's
        for (i, raw) in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty || line.hasPrefix("#") { continue }
            do {
                entries.append(try vocabulary.prompt(line))
            } catch let e as PromptError {
                throw PromptError("\(path) line \(i + 1): \(e.description)")
            }
        }
        guard !entries.isEmpty else { throw PromptError("\(path): the file has no prompts") }
    }

    /// Prompts given in memory (the captions of an image folder); `path` names where they come from.
    public init(path: String, entries: [Prompt]) {
        self.path = path; self.entries = entries
    }

    /// The largest prompt file read (about a million prompts).
    public static let maxBytes = 64 << 20

    /// The file's bytes, at most `maxBytes` of them: a larger file, or a stream without end
    /// (/dev/zero, a pipe), is an error after reading that much.
    static func readBounded(_ path: String) throws -> Data {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw PromptError("\(path): cannot read the file (\(String(cString: strerror(errno))))") }
        defer { close(fd) }
        var data = Data()
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = read(fd, &chunk, chunk.count)
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw PromptError("\(path): cannot read the file (\(String(cString: strerror(errno))))") }
            if n == 0 { return data }
            data.append(contentsOf: chunk[0..<n])
            guard data.count <= maxBytes else {
                throw PromptError("\(path): longer than \(maxBytes >> 20) MiB; a prompt file holds one short prompt a line")
            }
        }
    }
}
