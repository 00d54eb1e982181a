import Foundation

/// Writes `data` to `url` atomically: a temporary file in the same folder, then rename(2),
/// so a reader (or a killed run) never sees a half-written file.
public func writeAtomically(_ data: Data, to url: URL) throws {
    let dir = url.deletingLastPathComponent()
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let tmp = dir.appendingPathComponent(".\(url.lastPathComponent).\(getpid()).tmp")
    do {
        try data.write(to: tmp)
        guard rename(tmp.path, url.path) == 0 else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: url.path,
                             NSLocalizedDescriptionKey: "cannot rename \(tmp.path) to \(url.path): \(String(cString: strerror(errno)))"])
        }
    } catch {
        try? FileManager.default.removeItem(at: tmp)
        throw error
    }
}

public func writeAtomically(_ bytes: [UInt8], to url: URL) throws { try writeAtomically(Data(bytes), to: url) }
public func writeAtomically(_ text: String, to url: URL) throws { try writeAtomically(Data(text.utf8), to: url) }

/// Keeps only the lines of a JSON-lines log whose "step" is at most `maxStep` (what a checkpoint
/// covers; a killed run's later lines are redone after a resume). A missing file is left alone.
public func truncateJSONLines(_ url: URL, maxStep: Int) throws {
    guard let text = try? String(contentsOf: url, encoding: .utf8) else { return }
    let keep = text.split(separator: "\n").filter { line in
        guard let o = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any], let s = o["step"] as? Int else { return false }
        return s <= maxStep
    }
    try writeAtomically(keep.map { $0 + "\n" }.joined(), to: url)
}

/// Appends one line to a JSON-lines file so that a killed process leaves only whole lines:
/// the whole line goes out in one write(2) on an O_APPEND descriptor, then fsync.
public func appendLine(_ line: String, to url: URL) throws {
    try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
    let fd = open(url.path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
    guard fd >= 0 else { throw CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: "cannot open \(url.path): \(String(cString: strerror(errno)))"]) }
    defer { close(fd) }
    let bytes = Array((line.hasSuffix("\n") ? line : line + "\n").utf8)
    let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    guard n == bytes.count else { throw CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: "short write to \(url.path)"]) }
    fsync(fd)
}
