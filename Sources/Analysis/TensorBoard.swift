import Foundation
import Tensor

/// The protobuf wire format of the few TensorBoard messages flowtune writes (Event, Summary,
/// Summary.Value, Summary.Image): a hand-written encoder of four field kinds, because that is
/// all an event file needs and swift-protobuf would add a code generator and a runtime library
/// to the build for it.
struct ProtoEncoder {
    private(set) var bytes: [UInt8] = []

    mutating func varint(_ v: UInt64) {
        var v = v
        while v >= 0x80 { bytes.append(UInt8(v & 0x7f) | 0x80); v >>= 7 }
        bytes.append(UInt8(v))
    }
    private mutating func key(_ field: Int, _ wireType: UInt64) { varint(UInt64(field) << 3 | wireType) }
    mutating func int(_ field: Int, _ v: Int64) { key(field, 0); varint(UInt64(bitPattern: v)) }
    mutating func double(_ field: Int, _ v: Double) {
        key(field, 1)
        withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
    }
    mutating func float(_ field: Int, _ v: Float) {
        key(field, 5)
        withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
    }
    mutating func bytes(_ field: Int, _ b: [UInt8]) { key(field, 2); varint(UInt64(b.count)); bytes.append(contentsOf: b) }
    mutating func string(_ field: Int, _ s: String) { bytes(field, Array(s.utf8)) }
    mutating func message(_ field: Int, _ build: (inout ProtoEncoder) -> Void) {
        var m = ProtoEncoder()
        build(&m)
        bytes(field, m.bytes)
    }
}

/// One value of a TensorBoard summary: a scalar, or a PNG image.
public enum SummaryValue {
    case scalar(String, Double)
    case png(String, [UInt8], width: Int, height: Int)
}

/// TensorBoard event-file records (the TFRecord framing: length, masked CRC-32C of the length,
/// the serialised Event, masked CRC-32C of it).
public enum TensorBoardEvents {
    /// The masked CRC-32C of TFRecord: rotated right by 15 bits plus a constant.
    public static func maskedCRC(_ bytes: [UInt8]) -> UInt32 {
        let c = crc32c(bytes)
        return ((c >> 15) | (c << 17)) &+ 0xA282_EAD8
    }

    /// One framed record around a serialised message.
    public static func record(_ payload: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        let length = withUnsafeBytes(of: UInt64(payload.count).littleEndian) { Array($0) }
        out += length
        withUnsafeBytes(of: maskedCRC(length).littleEndian) { out += $0 }
        out += payload
        withUnsafeBytes(of: maskedCRC(payload).littleEndian) { out += $0 }
        return out
    }

    /// The first event of every file: its format version.
    public static func fileVersion(wallTime: Double) -> [UInt8] {
        var e = ProtoEncoder()
        e.double(1, wallTime)
        e.string(3, "brain.Event:2")
        return record(e.bytes)
    }

    /// An Event holding a Summary of `values` at `step`.
    public static func summary(step: Int, wallTime: Double, _ values: [SummaryValue]) -> [UInt8] {
        var e = ProtoEncoder()
        e.double(1, wallTime)
        e.int(2, Int64(step))
        e.message(5) { s in
            for v in values {
                s.message(1) { m in
                    switch v {
                    case .scalar(let tag, let x):
                        m.string(1, tag)
                        m.float(2, Float(x))
                    case .png(let tag, let png, let width, let height):
                        m.string(1, tag)
                        m.message(4) { img in
                            img.int(1, Int64(height)); img.int(2, Int64(width)); img.int(3, 3)   // colorspace 3: RGB
                            img.bytes(4, png)
                        }
                    }
                }
            }
        }
        return record(e.bytes)
    }

    /// Width and height of a PNG from its IHDR chunk (nil when the bytes are not a PNG).
    public static func pngSize(_ png: [UInt8]) -> (width: Int, height: Int)? {
        let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        guard png.count >= 24, Array(png[0..<8]) == signature, Array(png[12..<16]) == Array("IHDR".utf8) else { return nil }
        func be(_ i: Int) -> Int { png[i..<i + 4].reduce(0) { $0 << 8 | Int($1) } }
        return (be(16), be(20))
    }
}

/// The TensorBoard view of a run: every scalar of metrics.jsonl (the loop's and the algorithm's
/// as "train/...", evaluations as "eval/...", their standard errors as "eval_se/...", the paired
/// standard errors of their change since step 0 as "eval_change_se/..."), the
/// algorithm's per-SDE-step statistics as "timesteps/STAT/kNN", and
/// each evaluation's grid as the image "eval/grid". The event file is derived data: it is
/// rebuilt from metrics.jsonl and the grids when a run starts or resumes (so the steps a
/// resume redoes appear once), then appended to with every metrics line.
public final class TensorBoardLog {
    public let runDir: URL
    public private(set) var url: URL

    /// The event files flowtune wrote in a run folder.
    public static func eventFiles(in runDir: URL) -> [URL] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: runDir.path)) ?? []
        return names.filter { $0.hasPrefix("events.out.tfevents.") && $0.hasSuffix(".flowtune") }.sorted()
            .map { runDir.appendingPathComponent($0) }
    }

    /// Writes a new event file holding every line of the run's metrics.jsonl (a missing file:
    /// none yet), then removes the older event files flowtune wrote there.
    public init(runDir: URL) throws {
        self.runDir = runDir
        let old = Self.eventFiles(in: runDir)
        // a name later than every older one: TensorBoard reads a folder's files in name order
        var stamp = Int(Date().timeIntervalSince1970)
        if let last = old.last, let previous = Int(last.lastPathComponent.split(separator: ".")[3]) { stamp = max(stamp, previous + 1) }
        let host = ProcessInfo.processInfo.hostName.filter { $0.isLetter || $0.isNumber || $0 == "-" }
        url = runDir.appendingPathComponent("events.out.tfevents.\(stamp).\(host.isEmpty ? "host" : host).flowtune")
        let metricsURL = runDir.appendingPathComponent("metrics.jsonl")
        let text = (try? String(contentsOf: metricsURL, encoding: .utf8)) ?? ""    // missing or emptied by a resume: no lines yet
        let lines = text.allSatisfy(\.isWhitespace) ? [] : try RunMetrics(url: metricsURL).lines
        // wall times: the iterations' durations laid back from when metrics.jsonl was last written
        let end = ((try? FileManager.default.attributesOfItem(atPath: metricsURL.path))?[.modificationDate] as? Date) ?? Date()
        var wall = end.timeIntervalSince1970 - lines.compactMap(\.seconds).reduce(0, +)
        var bytes = TensorBoardEvents.fileVersion(wallTime: wall)
        for line in lines {
            wall += line.seconds ?? 0
            bytes += try events(line, wallTime: wall)
        }
        try writeAtomically(bytes, to: url)
        for f in old where f != url { try? FileManager.default.removeItem(at: f) }
    }

    /// Appends one metrics line's events (not flushed to disk: the file can be rebuilt).
    public func append(_ line: MetricsRecord) throws {
        try appendBytes(try events(line, wallTime: Date().timeIntervalSince1970), to: url, durable: false)
    }

    func events(_ line: MetricsRecord, wallTime: Double) throws -> [UInt8] {
        var values: [SummaryValue] = line.scalars.map { .scalar("train/" + $0.0, $0.1) }
        for s in line.algorithm.steps ?? [] {
            let k = String(format: "k%02ld", Int(s["k"] ?? 0))
            for (name, v) in s where name != "k" && name != "t" { values.append(.scalar("timesteps/\(name)/\(k)", v)) }
        }
        var out: [UInt8] = []
        if let eval = line.eval {
            values += eval.scalars.map { .scalar("eval/" + $0.0, $0.1) }
            values += eval.scalars.compactMap { k, _ in eval.se[k].map { .scalar("eval_se/" + k, $0) } }
            values += eval.scalars.compactMap { k, _ in eval.changeSE[k].map { .scalar("eval_change_se/" + k, $0) } }
            if let floor = eval.fdFloor { values.append(.scalar("eval/fd_floor", floor)) }
            if let floor = eval.fd21Floor { values.append(.scalar("eval/fd21_floor", floor)) }
            if let png = try? [UInt8](Data(contentsOf: runDir.appendingPathComponent(eval.grid))), let size = TensorBoardEvents.pngSize(png) {
                out += TensorBoardEvents.summary(step: line.step, wallTime: wallTime, [.png("eval/grid", png, width: size.width, height: size.height)])
            }
        }
        if !values.isEmpty { out = TensorBoardEvents.summary(step: line.step, wallTime: wallTime, values) + out }
        return out
    }
}
