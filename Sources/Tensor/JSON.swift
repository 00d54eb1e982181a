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
