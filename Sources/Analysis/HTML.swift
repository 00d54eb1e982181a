import Foundation

/// A small typed HTML builder: elements with attributes and children, text escaped on the way
/// in, so a page is built from calls rather than concatenated strings.
public struct HTML {
    public private(set) var text = ""
    public init() {}

    /// Text content (escaped).
    public mutating func text(_ s: String) { text += Self.escape(s) }
    /// Markup written as it is: only for fixed fragments (a style sheet, a script).
    public mutating func raw(_ s: String) { text += s }

    /// `<tag attrs>children</tag>`.
    public mutating func element(_ tag: String, _ attributes: [(String, String)] = [], _ children: (inout HTML) -> Void = { _ in }) {
        text += "<" + tag + attributes.map { " \($0.0)=\"\(Self.escape($0.1))\"" }.joined() + ">"
        children(&self)
        text += "</\(tag)>"
    }
    /// An element without an end tag (img, input, meta).
    public mutating func void(_ tag: String, _ attributes: [(String, String)]) {
        text += "<" + tag + attributes.map { " \($0.0)=\"\(Self.escape($0.1))\"" }.joined() + ">"
    }
    /// An element holding only text.
    public mutating func element(_ tag: String, _ attributes: [(String, String)] = [], text content: String) {
        element(tag, attributes) { $0.text(content) }
    }
    public mutating func paragraph(_ content: String, class name: String? = nil) {
        element("p", name.map { [("class", $0)] } ?? [], text: content)
    }
    public mutating func heading(_ content: String) { element("h2", text: content) }
    public mutating func image(_ src: String, alt: String, attributes: [(String, String)] = []) {
        void("img", [("src", src), ("alt", alt)] + attributes)
    }

    /// A table: a header row, then rows of cells (each cell built by its closure).
    public mutating func table(header: [String], rows: [(attributes: [(String, String)], cells: [(inout HTML) -> Void])]) {
        element("table") { t in
            t.element("tr") { tr in for h in header { tr.element("th", text: h) } }
            for row in rows {
                t.element("tr", row.attributes) { tr in for c in row.cells { tr.element("td") { c(&$0) } } }
            }
        }
    }

    public static func escape(_ s: String) -> String {
        var out = ""
        for ch in s {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            default: out.append(ch)
            }
        }
        return out
    }

    /// A JSON string literal for a script (quotes, backslashes and "</" escaped).
    public static func scriptString(_ s: String) -> String {
        "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "</", with: "<\\/").replacingOccurrences(of: "\n", with: "\\n") + "\""
    }
}
