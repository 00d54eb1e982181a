import Foundation
import Tensor

/// Reading and writing safetensors files: an 8-byte little-endian header length, a JSON header
/// mapping each tensor name to {dtype, shape, data_offsets} (plus an optional "__metadata__"
/// object of string -> string), then the raw little-endian data. flowtune writes F32 tensors
/// and records a CRC-32 of the data region in the metadata, checked on load.
public struct SafeTensorsFile {
    public struct Entry { public var shape: [Int]; public var values: [Float] }
    public var tensors: [String: Entry] = [:]
    public var order: [String] = []           // names in file order
    public var metadata: [String: String] = [:]

    public init() {}

    public mutating func add(_ name: String, shape: [Int], values: [Float]) {
        precondition(shape.reduce(1, *) == values.count, "\(name): shape \(shape) for \(values.count) values")
        if tensors[name] == nil { order.append(name) }
        tensors[name] = Entry(shape: shape, values: values)
    }

    /// The bytes of the file. The data CRC-32 goes into metadata["crc32"].
    public func serialized() throws -> Data {
        var data = Data()
        var header: [String: Any] = [:]
        for name in order {
            let e = tensors[name]!
            let start = data.count
            e.values.withUnsafeBufferPointer { data.append(UnsafeBufferPointer(start: UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: UInt8.self), count: $0.count * 4)) }
            header[name] = ["dtype": "F32", "shape": e.shape, "data_offsets": [start, data.count]]
        }
        var meta = metadata
        meta["crc32"] = String(format: "%08x", data.withUnsafeBytes { crc32($0) })
        header["__metadata__"] = meta
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) }     // pad with spaces to align the data
        var out = Data()
        var n = UInt64(json.count).littleEndian
        withUnsafeBytes(of: &n) { out.append(contentsOf: $0) }
        out.append(json)
        out.append(data)
        return out
    }

    /// Parses a safetensors file. Truncation, a bad header, a foreign dtype, overlapping or
    /// out-of-range offsets and a CRC mismatch are errors that name the file.
    public init(data: Data, source: String) throws {
        func bad(_ why: String) -> CheckpointError { CheckpointError("\(source): \(why)") }
        guard data.count >= 8 else { throw bad("truncated: \(data.count) bytes, not a safetensors file") }
        let n = data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }.littleEndian
        guard n > 1, n < 100_000_000, 8 + Int(n) <= data.count else {
            throw bad("not a safetensors file or truncated (header length \(n), file \(data.count) bytes)")
        }
        let headerData = data.subdata(in: 8..<(8 + Int(n)))
        guard let header = (try? JSONSerialization.jsonObject(with: headerData)) as? [String: Any] else {
            throw bad("the safetensors header is not a JSON object")
        }
        let body = data.subdata(in: (8 + Int(n))..<data.count)
        if let meta = header["__metadata__"] {
            guard let m = meta as? [String: String] else { throw bad("__metadata__ is not a string map") }
            metadata = m
        }
        var spans: [(Int, Int, String)] = []
        for (name, value) in header where name != "__metadata__" {
            guard let d = value as? [String: Any], let dtype = d["dtype"] as? String,
                  let shape = d["shape"] as? [Int], let offs = d["data_offsets"] as? [Int], offs.count == 2 else {
                throw bad("tensor '\(name)' has a malformed header entry")
            }
            guard dtype == "F32" else { throw bad("tensor '\(name)' has dtype \(dtype); flowtune reads F32 only") }
            // the element count with overflow checks (release builds do not trap on overflow, and a
            // wrapped product could pass the size check below for a shape that does not fit)
            var count = 1, overflow = false
            for d in shape {
                let (p, o) = count.multipliedReportingOverflow(by: max(d, 0))
                count = p; overflow = overflow || o || count > body.count
            }
            guard !overflow else { throw bad("tensor '\(name)' has shape \(shape), larger than the file") }
            guard shape.allSatisfy({ $0 >= 0 }), offs[0] >= 0, offs[0] <= offs[1], offs[1] <= body.count, offs[1] - offs[0] == count * 4 else {
                throw bad("tensor '\(name)' has data offsets \(offs) that do not fit its shape \(shape) or the file (truncated?)")
            }
            if count > 0 { spans.append((offs[0], offs[1], name)) }
            var values = [Float](repeating: 0, count: count)
            values.withUnsafeMutableBytes { dst in
                body.withUnsafeBytes { src in
                    dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[offs[0]..<offs[1]]))
                }
            }
            #if _endian(big)
            for i in values.indices { values[i] = Float(bitPattern: values[i].bitPattern.byteSwapped) }
            #endif
            tensors[name] = Entry(shape: shape, values: values)
        }
        spans.sort { $0.0 < $1.0 }
        order = spans.map(\.2) + tensors.keys.filter { name in !spans.contains { $0.2 == name } }.sorted()
        for i in 1..<max(1, spans.count) where spans[i].0 < spans[i - 1].1 { throw bad("tensors '\(spans[i - 1].2)' and '\(spans[i].2)' overlap") }
        if let crc = metadata["crc32"] {
            let actual = String(format: "%08x", body.withUnsafeBytes { crc32($0) })
            guard actual == crc else { throw bad("checksum mismatch (stored \(crc), computed \(actual)): the file is corrupted") }
        }
    }

    public init(contentsOf url: URL) throws {
        try self.init(data: try Self.read(url), source: url.path)
    }

    /// The CRC-32 of a file's bytes as 8 hex digits (a run records its base model's).
    public static func checksum(of data: Data) -> String { String(format: "%08x", data.withUnsafeBytes { crc32($0) }) }

    /// A file's bytes, or an error naming it.
    public static func read(_ url: URL) throws -> Data {
        do { return try Data(contentsOf: url) } catch {
            throw CheckpointError("cannot read \(url.path): \(FileManager.default.fileExists(atPath: url.path) ? "unreadable" : "no such file")")
        }
    }
}

public struct CheckpointError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
