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
///
/// Only a regular file (or nothing) is ever replaced. A path that is a character device or a
/// pipe (`/dev/null`, `/dev/stdout`, a FIFO with a reader) is written into, not replaced; a
/// symbolic link stays a link and the file it names is replaced; a folder, a block device, a
/// socket or a link to nothing is an error. The temporary file has an unpredictable name and is
/// created with O_EXCL | O_NOFOLLOW, so a file or link planted beside the target is never
/// followed or overwritten.
public func writeAtomically(_ data: Data, to url: URL, durable: Bool = true) throws {
    var target = url
    var st = stat()
    if stat(url.path, &st) == 0 {
        switch st.st_mode & S_IFMT {
        case S_IFREG:
            // through a link: replace the file it names, in that file's folder
            var lst = stat()
            if lstat(url.path, &lst) == 0, lst.st_mode & S_IFMT == S_IFLNK, let real = realpath(url.path, nil) {
                target = URL(fileURLWithPath: String(cString: real)); free(real)
            }
        case S_IFCHR, S_IFIFO:
            return try writeInto(data, path: url.path)
        case S_IFDIR: throw FileError("cannot write \(url.path): it is a folder")
        default: throw FileError("cannot write \(url.path): it is not a regular file (a block device or socket); flowtune writes regular files")
        }
    } else if errno == ENOENT {
        var lst = stat()
        if lstat(url.path, &lst) == 0 { throw FileError("cannot write \(url.path): it is a symbolic link to nothing") }
    }
    let dir = target.deletingLastPathComponent()
    try makeFolder(dir)
    let (fd, tmp) = try createTemporary(beside: target)
    var failure: FileError?
    data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
        if let e = writeAll(fd, raw) { failure = FileError("cannot write \(url.path): \(e)"); return }
        if durable && fsync(fd) != 0 { failure = .posix("write", url.path) }
    }
    close(fd)
    if failure == nil, rename(tmp, target.path) != 0 { failure = .posix("rename \(tmp) to", target.path) }
    if let failure {
        unlink(tmp)
        throw failure
    }
}

/// A new file `.NAME.RANDOM.tmp` beside `url`, created exclusively (O_EXCL | O_NOFOLLOW: an
/// existing file or link of that name is never opened): its descriptor and path.
public func createTemporary(beside url: URL) throws -> (Int32, String) {
    let dir = url.deletingLastPathComponent()
    for _ in 0..<16 {
        let tag = String(UInt64.random(in: 0...UInt64.max), radix: 36)
        let path = dir.appendingPathComponent(".\(url.lastPathComponent).\(tag).tmp").path
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
        if fd >= 0 { return (fd, path) }
        guard errno == EEXIST else { throw FileError.posix("write", url.path) }
    }
    throw FileError("cannot write \(url.path): no free temporary name beside it")
}

/// Writes all of `raw` to `fd`; the system's reason on failure.
public func writeAll(_ fd: Int32, _ raw: UnsafeRawBufferPointer) -> String? {
    var done = 0
    while done < raw.count {
        let n = write(fd, raw.baseAddress! + done, raw.count - done)
        if n < 0 { if errno == EINTR { continue }; return String(cString: strerror(errno)) }
        done += n
    }
    return nil
}

/// Writes into an existing character device or pipe (never created, truncated or replaced). A
/// FIFO that nobody reads is an error, not a wait.
func writeInto(_ data: Data, path: String) throws {
    let fd = open(path, O_WRONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC)
    guard fd >= 0 else {
        if errno == ENXIO { throw FileError("cannot write \(path): it is a pipe that nobody reads") }
        throw FileError.posix("write", path)
    }
    defer { close(fd) }
    let flags = fcntl(fd, F_GETFL)
    _ = fcntl(fd, F_SETFL, flags & ~O_NONBLOCK)
    if let e = data.withUnsafeBytes({ writeAll(fd, $0) }) { throw FileError("cannot write \(path): \(e)") }
}

public func writeAtomically(_ bytes: [UInt8], to url: URL) throws { try writeAtomically(Data(bytes), to: url) }
public func writeAtomically(_ text: String, to url: URL) throws { try writeAtomically(Data(text.utf8), to: url) }

/// The "step" of one JSON-lines log line (nil: not a whole JSON object with one).
public func jsonLineStep(_ line: Substring) -> Int? {
    ((try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any])?["step"] as? Int
}

/// Keeps only the lines of a JSON-lines log whose "step" is at most `maxStep` (what a checkpoint
/// covers; a killed run's later lines are redone after a resume). A missing file is left alone.
public func truncateJSONLines(_ url: URL, maxStep: Int) throws {
    guard let text = try? String(contentsOf: url, encoding: .utf8) else { return }
    let keep = text.split(separator: "\n").filter { line in jsonLineStep(line).map { $0 <= maxStep } ?? false }
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
