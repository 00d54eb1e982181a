import Foundation

/// A minimal JSON value for writing machine-readable lines with a stable key order.
public enum JSONValue {
    case int(Int), double(Double), string(String), bool(Bool), null
    case array([JSONValue]), object([(String, JSONValue)])

    public var text: String {
        switch self {
        case .int(let v): return String(v)
        case .double(let v): return v.isFinite ? String(format: "%.6g", v) : "null"
        case .string(let s): return jsonQuote(s)
        case .bool(let b): return b ? "true" : "false"
        case .null: return "null"
        case .array(let a): return "[" + a.map(\.text).joined(separator: ", ") + "]"
        case .object(let o): return "{" + o.map { jsonQuote($0.0) + ": " + $0.1.text }.joined(separator: ", ") + "}"
        }
    }
}

/// One JSON object with keys in the given order.
public func jsonObject(_ pairs: KeyValuePairs<String, JSONValue>) -> String {
    JSONValue.object(pairs.map { ($0.key, $0.value) }).text
}

public func jsonQuote(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
        }
    }
    return out + "\""
}

/// `value` encoded as a JSON object (nil if it does not encode to one).
public func jsonDictionary<T: Encodable>(_ value: T) -> [String: Any]? {
    (try? JSONEncoder().encode(value)).flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] }
}

/// A value of a JSON object as text: a string as itself, anything else as JSON with sorted keys
/// (so that two equal nested objects read the same whatever their key order).
public func jsonText(_ value: Any?) -> String {
    guard let value else { return "none" }
    if let s = value as? String { return s }
    return (try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed]))
        .map { String(decoding: $0, as: UTF8.self) } ?? "\(value)"
}

/// The keys whose values differ between two JSON objects, sorted, leaving out `ignoring`;
/// `sharedOnly`: only keys both objects have (one written by an older version lacks the newer).
public func differingKeys(_ a: [String: Any], _ b: [String: Any], ignoring: Set<String> = [], sharedOnly: Bool = false) -> [String] {
    let keys = sharedOnly ? Set(a.keys).intersection(b.keys) : Set(a.keys).union(b.keys)
    return keys.subtracting(ignoring).sorted().filter { jsonText(a[$0]) != jsonText(b[$0]) }
}

extension JSONValue {
    /// Parses JSON text keeping every object's key order (what metrics.jsonl's readers need:
    /// an algorithm's metrics are listed in the order it wrote them). A malformed text is an
    /// error saying where.
    public static func parse(_ text: String) throws -> JSONValue {
        var p = JSONParser(bytes: Array(text.utf8))
        p.skipSpace()
        let v = try p.value(depth: 0)
        p.skipSpace()
        guard p.i == p.bytes.count else { throw p.error("text after the value") }
        return v
    }

    /// The number (an int or a double), or nil.
    public var number: Double? {
        switch self {
        case .int(let v): return Double(v)
        case .double(let v): return v
        default: return nil
        }
    }
    /// The value of `key` in an object (nil: not an object, or no such key).
    public subscript(key: String) -> JSONValue? {
        if case .object(let o) = self { return o.first { $0.0 == key }?.1 }
        return nil
    }
}

struct JSONParseError: Error, CustomStringConvertible {
    let description: String
}

/// A recursive-descent reader of RFC 8259 JSON over UTF-8 bytes.
struct JSONParser {
    let bytes: [UInt8]
    var i = 0
    static let maxDepth = 256

    func error(_ what: String) -> JSONParseError { JSONParseError(description: "not JSON at byte \(i): \(what)") }

    mutating func skipSpace() {
        while i < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[i]) { i += 1 }
    }

    mutating func expect(_ word: String) throws {
        let w = Array(word.utf8)
        guard i + w.count <= bytes.count, Array(bytes[i..<(i + w.count)]) == w else { throw error("expected \(word)") }
        i += w.count
    }

    mutating func value(depth: Int) throws -> JSONValue {
        guard depth < Self.maxDepth else { throw error("nested too deeply") }
        guard i < bytes.count else { throw error("unexpected end") }
        switch bytes[i] {
        case UInt8(ascii: "{"):
            i += 1
            var o: [(String, JSONValue)] = []
            skipSpace()
            if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return .object(o) }
            while true {
                skipSpace()
                guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw error("expected a key") }
                let k = try string()
                skipSpace()
                try expect(":")
                skipSpace()
                o.append((k, try value(depth: depth + 1)))
                skipSpace()
                guard i < bytes.count else { throw error("unexpected end") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                try expect("}")
                return .object(o)
            }
        case UInt8(ascii: "["):
            i += 1
            var a: [JSONValue] = []
            skipSpace()
            if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return .array(a) }
            while true {
                skipSpace()
                a.append(try value(depth: depth + 1))
                skipSpace()
                guard i < bytes.count else { throw error("unexpected end") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                try expect("]")
                return .array(a)
            }
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try expect("true"); return .bool(true)
        case UInt8(ascii: "f"): try expect("false"); return .bool(false)
        case UInt8(ascii: "n"): try expect("null"); return .null
        default: return try number()
        }
    }

    mutating func number() throws -> JSONValue {
        let start = i
        while i < bytes.count, "+-0123456789.eE".utf8.contains(bytes[i]) { i += 1 }
        let s = String(decoding: bytes[start..<i], as: UTF8.self)
        let isInt = !s.contains { ".eE".contains($0) }
        if isInt, let v = Int(s) { return .int(v) }
        guard !s.isEmpty, s.first != "+", let v = Double(s) else { i = start; throw error("expected a value") }
        return .double(v)
    }

    mutating func string() throws -> String {
        i += 1    // the opening quote
        var out = [UInt8]()
        while true {
            guard i < bytes.count else { throw error("unterminated string") }
            let c = bytes[i]
            i += 1
            switch c {
            case UInt8(ascii: "\""): return String(decoding: out, as: UTF8.self)
            case UInt8(ascii: "\\"):
                guard i < bytes.count else { throw error("unterminated string") }
                let e = bytes[i]
                i += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var code = try hex4()
                    if (0xD800..<0xDC00).contains(code), i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") {
                        i += 2
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw error("a lone surrogate") }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let scalar = Unicode.Scalar(code) else { throw error("a lone surrogate") }
                    out += Array(String(Character(scalar)).utf8)
                default: throw error("a bad escape")
                }
            default:
                guard c >= 0x20 else { throw error("a control character in a string") }
                out.append(c)
            }
        }
    }

    mutating func hex4() throws -> UInt32 {
        guard i + 4 <= bytes.count, let v = UInt32(String(decoding: bytes[i..<(i + 4)], as: UTF8.self), radix: 16) else { throw error("a bad \\u escape") }
        i += 4
        return v
    }
}

/// Named numbers in the order they were added: an algorithm's metrics of one iteration, one
/// SDE step's statistics. Setting a new name appends it; setting nil removes it.
public struct Scalars: Equatable, Sequence, Sendable, ExpressibleByDictionaryLiteral {
    public private(set) var names: [String] = []
    private var values: [String: Double] = [:]

    public init() {}
    public init(dictionaryLiteral elements: (String, Double)...) { for (k, v) in elements { self[k] = v } }
    public init(_ pairs: [(String, Double)]) { for (k, v) in pairs { self[k] = v } }

    public subscript(name: String) -> Double? {
        get { values[name] }
        set {
            if let newValue {
                if values[name] == nil { names.append(name) }
                values[name] = newValue
            } else if values.removeValue(forKey: name) != nil {
                names.removeAll { $0 == name }
            }
        }
    }
    public var isEmpty: Bool { names.isEmpty }
    public var count: Int { names.count }
    public func makeIterator() -> AnyIterator<(name: String, value: Double)> {
        var it = names.makeIterator()
        return AnyIterator { it.next().map { ($0, values[$0]!) } }
    }
}
