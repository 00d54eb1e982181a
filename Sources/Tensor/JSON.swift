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
