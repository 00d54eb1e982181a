import Testing
import Foundation
import Tensor

@Suite struct JSONTests {
    /// The reader keeps each object's key order, reads every kind of value and escape, and
    /// refuses malformed text; what it reads, written again, is the text (numbers with 6 digits).
    @Test func parseKeepsKeyOrderAndEveryKind() throws {
        let text = #"{"z": 1, "a": -2.5e-3, "m": [true, false, null, "x\"\\\n\u00e9\ud83d\ude00"], "o": {"b": 2, "a": {}}}"#
        let v = try JSONValue.parse(text)
        guard case .object(let o) = v else { Issue.record("not an object"); return }
        #expect(o.map(\.0) == ["z", "a", "m", "o"])
        #expect(v["z"]?.number == 1 && v["a"]?.number == -2.5e-3)
        if case .array(let a)? = v["m"] {
            #expect(a.count == 4)
            if case .string(let s) = a[3] { #expect(s == "x\"\\\né😀") } else { Issue.record("not a string") }
        }
        #expect(v["o"]?["b"]?.number == 2)
        #expect(try JSONValue.parse(v.text).text == v.text)
        for bad in ["", "{", "{\"a\" 1}", "[1,]", "01x", "\"\\q\"", "{\"a\": 1} 2", "\"\u{01}\"", "nul", "[" + String(repeating: "[", count: 300)] {
            #expect(throws: (any Error).self, "\(bad)") { try JSONValue.parse(bad) }
        }
    }

    /// Scalars keep the order names were added; setting nil removes a name.
    @Test func scalarsKeepTheirOrder() {
        var s: Scalars = ["b": 1, "a": 2]
        s["c"] = 3; s["b"] = 4; s["a"] = nil
        #expect(s.names == ["b", "c"] && s["b"] == 4 && s["a"] == nil && s.count == 2)
    }
}
