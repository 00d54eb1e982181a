import Foundation

/// A file or folder that cannot be read or written, with the path and the system's reason.
public struct FileError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
    /// "cannot WHAT PATH: strerror(errno)"
    static func posix(_ what: String, _ path: String) -> FileError {
        FileError("cannot \(what) \(path): \(String(cString: strerror(errno)))")
    }
}

/// Creates the folder `url` and its missing parents; a path that is a file, or a folder that
/// cannot be created (permissions, read-only file system), is an error naming the path.
public func makeFolder(_ url: URL) throws {
    var isDir: ObjCBool = false
    if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) {
        guard isDir.boolValue else { throw FileError("\(url.path) is a file, not a folder") }
        return
    }
    let parent = url.deletingLastPathComponent()
    if parent.path != url.path { try makeFolder(parent) }
    guard mkdir(url.path, 0o755) == 0 || errno == EEXIST else { throw FileError.posix("create the folder", url.path) }
}

/// Writes `data` to `url` atomically: a temporary file in the same folder, flushed to disk, then
/// rename(2), so a reader (or a killed run, or a power cut) never sees a half-written file.
/// `durable: false` skips the flush, for files nobody keeps (an image handed to a scorer).
public func writeAtomically(_ data: Data, to url: URL, durable: Bool = true) throws {
    let dir = url.deletingLastPathComponent()
    try makeFolder(dir)
    let tmp = dir.appendingPathComponent(".\(url.lastPathComponent).\(getpid()).tmp")
    let fd = open(tmp.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw FileError.posix("write", url.path) }
    var failure: FileError?
    data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
        var done = 0
        while done < raw.count {
            let n = write(fd, raw.baseAddress! + done, raw.count - done)
            if n < 0 { if errno == EINTR { continue }; failure = .posix("write", url.path); return }
            done += n
        }
        if durable && fsync(fd) != 0 { failure = .posix("write", url.path) }
    }
    close(fd)
    if failure == nil, rename(tmp.path, url.path) != 0 { failure = .posix("rename \(tmp.path) to", url.path) }
    if let failure {
        unlink(tmp.path)
        throw failure
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
    try appendBytes(Array((line.hasSuffix("\n") ? line : line + "\n").utf8), to: url)
}

/// Appends `bytes` to a file (created if missing) in one write(2) on an O_APPEND descriptor,
/// then fsync unless `durable` is false.
public func appendBytes(_ bytes: [UInt8], to url: URL, durable: Bool = true) throws {
    try makeFolder(url.deletingLastPathComponent())
    let fd = open(url.path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw FileError.posix("append to", url.path) }
    defer { close(fd) }
    let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    guard n == bytes.count else { throw n < 0 ? FileError.posix("append to", url.path) : FileError("cannot append to \(url.path): short write") }
    if durable { fsync(fd) }
}
