import Shapes
import Foundation
import Imaging
import Tensor
#if canImport(Glibc)
import Glibc
#endif

/// A reward from any program: a long-lived child process (`/bin/sh -c COMMAND`) that reads one
/// JSON object per line on stdin, {"image": "<png path>", "prompt": "..."}, and answers one JSON
/// number per line on stdout. A crash, a hang past the timeout, a non-number, NaN/Inf or a short
/// reply is an error naming the scorer; the child is then stopped.
public final class ExternalScorer: RewardScorer {
    public let command: String
    public let timeout: Double
    public var name: String { "external:\(command)" }
    var process: Process?
    var toChild: FileHandle?
    var fromChild: Int32 = -1
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
        signal(SIGPIPE, SIG_IGN)    // a dead child must give EPIPE, not kill us
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", command]
        let input = Pipe(), output = Pipe()
        p.standardInput = input
        p.standardOutput = output
        p.standardError = FileHandle.standardError
        do { try p.run() } catch { throw fail("cannot start: \(error)") }
        process = p
        toChild = input.fileHandleForWriting
        fromChild = output.fileHandleForReading.fileDescriptor
        buffer = []
    }

    func stop() {
        if let p = process, p.isRunning { p.terminate(); usleep(20_000); if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        try? toChild?.close()
        process = nil; toChild = nil; fromChild = -1
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
            let r = poll(&pfd, 1, Int32(min(left, 1) * 1000))
            if r < 0 && errno == EINTR { continue }
            if r <= 0 { continue }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = read(fromChild, &chunk, chunk.count)
            if n <= 0 {
                process?.waitUntilExit()
                let status = process?.terminationStatus ?? -1
                throw fail(buffer.isEmpty ? "exited (status \(status)) before answering" : "exited (status \(status)) after a partial line")
            }
            buffer += chunk[0..<n]
        }
    }

    public func score(_ images: ImageBatch, prompts: [Prompt]) throws -> [Float] {
        if process == nil || !(process!.isRunning) {
            if process != nil { throw fail("exited (status \(process!.terminationStatus))") }
            try start()
        }
        var out: [Float] = []
        for (img, prompt) in zip(images.images, prompts) {
            counter += 1
            let path = dir.appendingPathComponent("image-\(counter % 1000).png")
            try writeAtomically(try RGBImage(signedUnit: img, width: images.size, height: images.size).pngData(), to: path)
            let line = "{\"image\": \(jsonQuote(path.path)), \"prompt\": \(jsonQuote(prompt.text))}\n"
            do { try toChild!.write(contentsOf: Data(line.utf8)) } catch { throw fail("cannot write to it (exited?): \(error)") }
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
