import Foundation

/// A prompt list: one prompt per line; blank lines and lines starting with '#' are skipped.
/// Lines may end in LF or CRLF, and a UTF-8 byte-order mark at the start is skipped (what
/// Windows editors write).
public struct PromptFile: Sendable {
    public var path: String
    public var entries: [Prompt]
    public var prompts: [String] { entries.map(\.text) }
    public var specs: [PromptSpec] { entries.map(\.spec) }

    /// Reads and parses every prompt. A missing, unreadable or empty file, an unknown word or a
    /// prompt the grammar does not allow is an error naming the file and line.
    public init(path: String) throws {
        self.path = path
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw PromptError("\(path): no such prompt file") }
        guard !isDir.boolValue else { throw PromptError("\(path): is a folder, not a prompt file") }
        guard let handle = FileHandle(forReadingAtPath: path) else { throw PromptError("\(path): cannot read the file") }
        defer { try? handle.close() }
        guard let data = try? handle.readToEnd() ?? Data() else { throw PromptError("\(path): cannot read the file") }
        guard var text = String(data: data, encoding: .utf8) else { throw PromptError("\(path): not UTF-8 text") }
        if text.unicodeScalars.first == "\u{FEFF}" { text.unicodeScalars.removeFirst() }
        entries = []
        // "\r\n" is one Character in Swift: split on every line break, not on "\n" alone
        for (i, raw) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty || line.hasPrefix("#") { continue }
            do {
                entries.append(try Prompt(line))
            } catch let e as PromptError {
                throw PromptError("\(path) line \(i + 1): \(e.description)")
            }
        }
        guard !entries.isEmpty else { throw PromptError("\(path): the file has no prompts") }
    }
}
