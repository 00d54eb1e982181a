import Shapes
import Foundation
import Imaging
import Tensor
import CProcess
#if canImport(Glibc)
import Glibc
#endif

/// A reward from any program: a long-lived child process (`/bin/sh -c COMMAND`) that reads one
/// JSON object per line on stdin, {"image": "<png path>", "prompt": "..."}, and answers one JSON
/// number per line on stdout. A crash, a hang past the timeout, a non-number, NaN/Inf or a short
/// reply is an error naming the scorer; the child is then stopped.
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
    let dir: URL
    var counter = 0

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
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var to: Int32 = -1, from: Int32 = -1
        let p = ft_spawn_group(command, &to, &from)
        guard p > 0 else { throw fail("cannot start: \(String(cString: strerror(errno)))") }
        pid = p; toChild = to; fromChild = from
        buffer = []
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
            if let nl = buffer.firstIndex(of: 10) {
                let line = String(decoding: buffer[..<nl], as: UTF8.self)
                buffer.removeSubrange(...nl)
                return line
            }
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
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = read(fromChild, &chunk, chunk.count)
            if n <= 0 {
                let partial = !buffer.isEmpty
                let status = Self.describe(stop())
                throw fail(partial ? "exited (\(status)) after a partial line" : "exited (\(status)) before answering")
            }
            buffer += chunk[0..<n]
        }
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
            let line = "{\"image\": \(jsonQuote(path.path)), \"prompt\": \(jsonQuote(prompt.text))}\n"
            try write(Array(line.utf8))
            let reply = try readLine().trimmingCharacters(in: .whitespaces)
            guard let v = Double(reply) else {
                throw fail("answered '\(reply.prefix(80))', not a JSON number")
            }
            guard v.isFinite else { throw fail("answered '\(reply)', not a finite number") }
            out.append(Float(v))
        }
        return out
    }
}
