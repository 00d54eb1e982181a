import Shapes
import Foundation
import Imaging
import Tensor
import CProcess
#if canImport(Glibc)
import Glibc
#endif

/// A reward from any program: a long-lived child process (`/bin/sh -c COMMAND`) that reads one
/// JSON object per line on stdin, {"id": N, "image": "<png path>", "prompt": "..."}, and answers
/// each with one line on stdout: {"id": N, "score": X} (matched to its request by the id), or a
/// bare JSON number (matched in order). Replies are one to one: a reply to another id, or a line
/// that arrives before its request (two answers to one image, answers without reading), is an
/// error. A crash, a hang past the timeout, a non-number, NaN/Inf, a short reply or a line over
/// `maxLineBytes` is an error naming the scorer; the child is then stopped. Lines may end in
/// CRLF; they are read in linear time.
///
/// The command runs in a process group of its own, and stopping it stops the whole group
/// (SIGTERM, then SIGKILL after a grace period) and reaps it: nothing the scorer started outlives
/// it. The same happens if flowtune exits or is interrupted (SIGINT, SIGTERM, SIGHUP) while the
/// scorer runs (ft_process.c). Foundation's Process is not used: it cannot start a new group.
/// swiftlang/swift-subprocess (1.0.2, in the package mirror) can (PlatformOptions' process group,
/// a teardown sequence of signals), but its child lives inside an async `run { }` closure, while
/// a scorer here lives across many synchronous `score` calls of the training loop, and its
/// teardown runs only when that closure ends or is cancelled: not when flowtune itself is killed
/// by SIGTERM or exits through an error. The ~150 lines of C keep one table of live groups for the
/// signal handler and atexit, and make flowtune the subreaper of whatever a scorer starts.
public final class ExternalScorer: RewardScorer {
    public let command: String
    public let timeout: Double
    public var name: String { "external:\(command)" }
    var pid: pid_t = 0            // the child's pid and process group; 0 when none runs
    var toChild: Int32 = -1
    var fromChild: Int32 = -1
    public static let gracePeriodMilliseconds: Int32 = 500
    var buffer: [UInt8] = []
    /// How much of `buffer` is known to hold no newline (so a long line is scanned once).
    var scanned = 0
    /// The read buffer, kept across reads.
    var chunk = [UInt8](repeating: 0, count: 65536)
    let dir: URL
    var counter = 0
    /// The longest reply line read (a score needs a few dozen bytes).
    public static let maxLineBytes = 1 << 20

    public init(command: String, timeout: Double = 30) {
        self.command = command; self.timeout = timeout
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("flowtune-external-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: dir)
    }

    func fail(_ why: String) -> RewardError {
        stop()
        return RewardError("external scorer '\(command)': \(why)")
    }

    func start() throws {
        Self.removeStaleFolders()
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var to: Int32 = -1, from: Int32 = -1
        let p = ft_spawn_group(command, &to, &from)
        guard p > 0 else { throw fail("cannot start: \(String(cString: strerror(errno)))") }
        pid = p; toChild = to; fromChild = from
        buffer = []; scanned = 0
    }

    /// Removes the image folders of flowtune processes that no longer run (killed with SIGKILL,
    /// which no clean-up survives): `flowtune-external-PID-*` in the temporary folder.
    static func removeStaleFolders() {
        let tmp = FileManager.default.temporaryDirectory
        for name in (try? FileManager.default.contentsOfDirectory(atPath: tmp.path)) ?? [] where name.hasPrefix("flowtune-external-") {
            let fields = name.split(separator: "-")
            guard fields.count == 4, let owner = pid_t(fields[2]), owner > 0, owner != getpid() else { continue }
            if kill(owner, 0) != 0 && errno == ESRCH { try? FileManager.default.removeItem(at: tmp.appendingPathComponent(name)) }
        }
    }

    /// Stops the scorer's whole process group and reaps it; returns the leader's wait status.
    @discardableResult
    func stop() -> Int32 {
        var status: Int32 = -1
        if toChild >= 0 { close(toChild) }
        if pid > 0 { status = ft_stop_group(pid, Self.gracePeriodMilliseconds) }
        if fromChild >= 0 { close(fromChild) }
        pid = 0; toChild = -1; fromChild = -1
        return status
    }

    /// The leader's exit status as words ("status 3", "signal 9").
    static func describe(_ status: Int32) -> String {
        if status < 0 { return "status unknown" }
        if status & 0x7f == 0 { return "status \((status >> 8) & 0xff)" }
        return "signal \(status & 0x7f)"
    }

    /// Writes all of `bytes` to the child.
    func write(_ bytes: [UInt8]) throws {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { Glibc.write(toChild, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw fail("cannot write to it (exited?): \(String(cString: strerror(errno)))") }
            off += n
        }
    }

    /// Reads one line from the child within the timeout.
    func readLine() throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let nl = buffer[scanned...].firstIndex(of: 10) {
                let line = String(decoding: buffer[..<nl], as: UTF8.self)
                buffer.removeSubrange(...nl)
                scanned = 0
                return line
            }
            scanned = buffer.count
            guard buffer.count <= Self.maxLineBytes else { throw fail("answered a line longer than \(Self.maxLineBytes) bytes") }
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else { throw fail("no answer within \(timeout) s (hung?)") }
            var pfd = pollfd(fd: fromChild, events: Int16(POLLIN), revents: 0)
            let r = poll(&pfd, 1, Int32(min(left, 0.2) * 1000))
            if r < 0 && errno == EINTR { continue }
            if r <= 0 {
                // no output yet: a leader that has exited will not answer, even if a descendant
                // still holds its stdout open
                var status: Int32 = 0
                if pid > 0, ft_group_leader_running(pid, &status) == 0 {
                    throw fail("exited (\(Self.describe(status))) before answering")     // fail stops the group
                }
                continue
            }
            if readAvailable() <= 0 {
                let partial = !buffer.isEmpty
                let status = Self.describe(stop())
                throw fail(partial ? "exited (\(status)) after a partial line" : "exited (\(status)) before answering")
            }
        }
    }

    /// One read(2) of what the child has written, appended to `buffer`: its result.
    func readAvailable() -> Int {
        let n = read(fromChild, &chunk, chunk.count)
        if n > 0 { buffer += chunk[0..<n] }
        return n
    }

    public func score(_ images: ImageBatch, prompts: [Prompt]) throws -> [Float] {
        if pid > 0 {
            var status: Int32 = 0
            if ft_group_leader_running(pid, &status) == 0 { throw fail("exited (\(Self.describe(status)))") }
        } else {
            try start()
        }
        var out: [Float] = []
        for (img, prompt) in zip(images.images, prompts) {
            counter += 1
            let path = dir.appendingPathComponent("image-\(counter % 1000).png")
            try writeAtomically(Data(try RGBImage(signedUnit: img, width: images.size, height: images.size).pngData()), to: path, durable: false)
            try checkNothingUnasked()
            let line = "{\"id\": \(counter), \"image\": \(jsonQuote(path.path)), \"prompt\": \(jsonQuote(prompt.text))}\n"
            try write(Array(line.utf8))
            out.append(try Self.parse(reply: try readLine(), id: counter, fail: fail))
        }
        try checkNothingUnasked()
        return out
    }

    /// A reply must not come before its request: whatever the scorer has written beyond the
    /// answers asked for (a second line for one image, numbers printed without reading) is an error.
    func checkNothingUnasked() throws {
        var pfd = pollfd(fd: fromChild, events: Int16(POLLIN), revents: 0)
        if buffer.isEmpty, poll(&pfd, 1, 0) > 0, pfd.revents & Int16(POLLIN) != 0 { _ = readAvailable() }
        guard buffer.isEmpty else {
            let text = String(decoding: buffer.prefix(40), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw fail("answered more lines than it was asked (\(PromptError.quoted(text)) before its request): one line per image")
        }
    }

    /// The score of one reply line: {"id": N, "score": X} for request `id`, or a bare number.
    static func parse(reply raw: String, id: Int, fail: (String) -> RewardError) throws -> Float {
        let reply = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        let value: Double
        if reply.hasPrefix("{") {
            guard let o = (try? JSONSerialization.jsonObject(with: Data(reply.utf8))) as? [String: Any] else {
                throw fail("answered \(PromptError.quoted(reply)), not a JSON object")
            }
            guard let got = o["id"] as? Int, got == id else {
                throw fail("answered \(PromptError.quoted(reply)) to request \(id): the id must be the request's")
            }
            guard let v = (o["score"] as? NSNumber)?.doubleValue else {
                throw fail("answered \(PromptError.quoted(reply)) without a numeric \"score\"")
            }
            value = v
        } else {
            guard let v = Double(reply) else { throw fail("answered \(PromptError.quoted(reply)), not a JSON number") }
            value = v
        }
        guard value.isFinite else { throw fail("answered \(PromptError.quoted(reply)), not a finite number") }
        return Float(value)
    }
}
