import Foundation

/// A value a setting holds: read from the command line, written to and read from JSON.
public protocol SettingValue: Codable, Equatable {
    /// The value of a command-line word, or nil when the word is not one.
    init?(settingText: String)
    /// The value as the help text shows a default.
    var settingText: String { get }
    /// What the help text puts in the option's angle brackets.
    static var settingPlaceholder: String { get }
    /// Says what a word must be when it is not a value ("a number", "one of grpo, acflow").
    static var settingExpectation: String { get }
}

extension Int: SettingValue {
    public init?(settingText: String) { self.init(settingText) }
    public var settingText: String { String(self) }
    public static var settingPlaceholder: String { "n" }
    public static var settingExpectation: String { "a whole number" }
}
extension UInt64: SettingValue {
    public init?(settingText: String) { self.init(settingText) }
    public var settingText: String { String(self) }
    public static var settingPlaceholder: String { "n" }
    public static var settingExpectation: String { "a whole number >= 0" }
}
extension Float: SettingValue {
    public init?(settingText: String) { self.init(settingText) }
    public var settingText: String { "\(self)" }
    public static var settingPlaceholder: String { "x" }
    public static var settingExpectation: String { "a number" }
}
extension Double: SettingValue {
    public init?(settingText: String) { self.init(settingText) }
    public var settingText: String { "\(self)" }
    public static var settingPlaceholder: String { "x" }
    public static var settingExpectation: String { "a number" }
}
extension String: SettingValue {
    public init?(settingText: String) { self = settingText }
    public var settingText: String { self }
    public static var settingPlaceholder: String { "text" }
    public static var settingExpectation: String { "text" }
}
extension Bool: SettingValue {
    public init?(settingText: String) {
        switch settingText.lowercased() {
        case "true", "yes", "on", "1": self = true
        case "false", "no", "off", "0": self = false
        default: return nil
        }
    }
    public var settingText: String { self ? "true" : "false" }
    public static var settingPlaceholder: String { "bool" }
    public static var settingExpectation: String { "true or false" }
}

/// A named choice (an algorithm, a target) as a setting: its raw values are the words.
public protocol SettingChoice: SettingValue, RawRepresentable, CaseIterable where RawValue == String {}
extension SettingChoice {
    public init?(settingText: String) { self.init(rawValue: settingText) }
    public var settingText: String { rawValue }
    public static var settingPlaceholder: String { allCases.map(\.rawValue).joined(separator: "|") }
    public static var settingExpectation: String { "one of " + allCases.map(\.rawValue).joined(separator: ", ") }
}

/// A JSON key of any name (the settings' names are not known to the compiler).
public struct SettingKey: CodingKey {
    public var stringValue: String
    public var intValue: Int? { nil }
    public init(_ s: String) { stringValue = s }
    public init?(stringValue: String) { self.stringValue = stringValue }
    public init?(intValue: Int) { nil }
}

/// One setting of a configuration (`Config`): everything about it in one declaration — the
/// name (the command-line option without its "--", and the key of the configuration's JSON),
/// the field it sets (a key path: the default is the field's initial value), the help text, the
/// range check, whether a sweep may vary it and whether a resumed run may change it.
///
/// A configuration lists its settings in a `SettingTable`, which parses command lines, checks
/// values, writes the help, and encodes and decodes the JSON (a key that is absent reads as the
/// default; files written before the settings had these names are read through each setting's
/// `legacyKey`, the field's path in those files).
/// How a setting reads from the command line.
public enum SettingKind: Sendable {
    /// `--name VALUE`
    case value
    /// `--name` alone sets the field to true (or to false for an inverted flag)
    case flag
    /// `--name` alone changes several fields (after the values it may read, before the values
    /// that override it); not in the JSON
    case preset
}

public struct Setting<Config>: @unchecked Sendable {
    public let name: String
    public let help: String
    public let kind: SettingKind
    /// What goes in the help's angle brackets.
    public let placeholder: String
    /// A sweep may vary it (`--vary NAME=V1,V2`).
    public let sweepable: Bool
    /// A resumed run (or one started from a saved configuration) may be given a new value.
    public let changesOnResume: Bool
    /// Read from the command line by the table (and listed in its help). False for a value the
    /// run records (a checksum) or that the command reads through an option of its own (the
    /// precision, which every command with --threads has): stored, never parsed here.
    public let commandLine: Bool
    /// The field's path in JSON files written before the settings were named (dotted for a
    /// nested object): "sde.noiseLevel".
    public let legacyKey: String
    let defaultText: (Config) -> String
    let parse: (inout Config, String) throws -> Void
    let check: (Config) throws -> Void
    let whenGiven: (Config) throws -> Void
    let encode: (Config, inout KeyedEncodingContainer<SettingKey>) throws -> Void
    let decode: (inout Config, KeyedDecodingContainer<SettingKey>, SettingKey) throws -> Void
    let unequal: (Config, Config) -> Bool
    /// Sets an optional setting to nil (nil for the others): how an older file's absent key of an
    /// optional field reads, as it did when that file was written.
    let clear: ((inout Config) -> Void)?

    public var option: String { "--" + name }
    /// Whether the field may be absent (nil).
    public var isOptional: Bool { clear != nil }

    /// Sets the setting from a command-line word (a value's text; "" for a flag or preset).
    public func set(_ config: inout Config, _ text: String) throws { try parse(&config, text) }
    /// The setting's range check on a configuration.
    public func validate(_ config: Config) throws { try check(config) }
    /// The setting's value as text (the help's default).
    public func text(of config: Config) -> String { defaultText(config) }
    /// Whether two configurations differ in this setting.
    public func differs(_ a: Config, _ b: Config) -> Bool { unequal(a, b) }

    init(name: String, help: String, kind: SettingKind, placeholder: String, sweepable: Bool, changesOnResume: Bool, commandLine: Bool,
         legacyKey: String, defaultText: @escaping (Config) -> String, parse: @escaping (inout Config, String) throws -> Void,
         check: @escaping (Config) throws -> Void, whenGiven: @escaping (Config) throws -> Void,
         encode: @escaping (Config, inout KeyedEncodingContainer<SettingKey>) throws -> Void,
         decode: @escaping (inout Config, KeyedDecodingContainer<SettingKey>, SettingKey) throws -> Void,
         differs: @escaping (Config, Config) -> Bool, clear: ((inout Config) -> Void)? = nil) {
        self.name = name; self.help = help; self.kind = kind; self.placeholder = placeholder; self.sweepable = sweepable
        self.changesOnResume = changesOnResume; self.commandLine = commandLine; self.legacyKey = legacyKey; self.defaultText = defaultText
        self.parse = parse; self.check = check; self.whenGiven = whenGiven; self.encode = encode; self.decode = decode; self.unequal = differs
        self.clear = clear
    }

    /// The field's path as written before the settings were named: the key path's own
    /// description ("\FinetuneConfig.sde.noiseLevel" -> "sde.noiseLevel").
    static func path(_ keyPath: AnyKeyPath) -> String {
        let d = String(describing: keyPath)
        guard let dot = d.firstIndex(of: ".") else { return d }
        return String(d[d.index(after: dot)...])
    }

    /// A setting of one value: `--name VALUE`, the JSON key `name`.
    /// - Parameters:
    ///   - check: the range check, given the option's name and the value (OptionCheck's functions).
    ///   - placeholder: the help's angle brackets (default: the type's, "x" for a number).
    ///   - read: reads a word with an error of its own (default: `V(settingText:)`).
    public static func value<V: SettingValue>(_ keyPath: WritableKeyPath<Config, V>, _ name: String, _ help: String,
                                             check: ((String, V) throws -> Void)? = nil, placeholder: String? = nil,
                                             sweep: Bool = true, resume: Bool = false, commandLine: Bool = true,
                                             legacy: String? = nil, read: ((String) throws -> V)? = nil,
                                             whenGiven: ((Config) throws -> Void)? = nil) -> Setting {
        let option = "--" + name
        return Setting(name: name, help: help, kind: .value, placeholder: placeholder ?? V.settingPlaceholder, sweepable: sweep,
                       changesOnResume: resume, commandLine: commandLine, legacyKey: legacy ?? path(keyPath),
                       defaultText: { $0[keyPath: keyPath].settingText },
                       parse: { c, text in
                           if let read { c[keyPath: keyPath] = try read(text); return }
                           guard let v = V(settingText: text) else {
                               throw InvalidOption("\(option) '\(text)': expected \(V.settingExpectation)")
                           }
                           c[keyPath: keyPath] = v
                       },
                       check: { c in try check?(option, c[keyPath: keyPath]) },
                       whenGiven: { c in try whenGiven?(c) },
                       encode: { c, box in try box.encode(c[keyPath: keyPath], forKey: SettingKey(name)) },
                       decode: { c, box, key in c[keyPath: keyPath] = try box.decode(V.self, forKey: key) },
                       differs: { $0[keyPath: keyPath] != $1[keyPath: keyPath] })
    }

    /// A setting whose value may be absent (nil: `none` says what that means, e.g. "every step
    /// but the last"). `isNone` names the words that mean absent on the command line (say, a
    /// negative number); in JSON absent is null (and a missing key is the default).
    public static func optional<V: SettingValue>(_ keyPath: WritableKeyPath<Config, V?>, _ name: String, _ help: String,
                                                none: String, isNone: ((V) -> Bool)? = nil,
                                                check: ((String, V) throws -> Void)? = nil, placeholder: String? = nil,
                                                sweep: Bool = true, resume: Bool = false, commandLine: Bool = true, legacy: String? = nil,
                                                whenGiven: ((Config) throws -> Void)? = nil) -> Setting {
        let option = "--" + name
        return Setting(name: name, help: help, kind: .value, placeholder: placeholder ?? V.settingPlaceholder, sweepable: sweep,
                       changesOnResume: resume, commandLine: commandLine, legacyKey: legacy ?? path(keyPath),
                       defaultText: { $0[keyPath: keyPath]?.settingText ?? none },
                       parse: { c, text in
                           guard let v = V(settingText: text) else {
                               throw InvalidOption("\(option) '\(text)': expected \(V.settingExpectation)")
                           }
                           c[keyPath: keyPath] = isNone?(v) == true ? nil : v
                       },
                       check: { c in if let v = c[keyPath: keyPath] { try check?(option, v) } },
                       whenGiven: { c in try whenGiven?(c) },
                       encode: { c, box in
                           if let v = c[keyPath: keyPath] { try box.encode(v, forKey: SettingKey(name)) } else { try box.encodeNil(forKey: SettingKey(name)) }
                       },
                       decode: { c, box, key in c[keyPath: keyPath] = try box.decodeIfPresent(V.self, forKey: key) },
                       differs: { $0[keyPath: keyPath] != $1[keyPath: keyPath] },
                       clear: { $0[keyPath: keyPath] = nil })
    }

    /// A flag: `--name` sets the field to true (`inverted`: to false); in JSON the flag's own
    /// value (true when given). A sweep varies it with the values true and false.
    public static func flag(_ keyPath: WritableKeyPath<Config, Bool>, _ name: String, _ help: String, inverted: Bool = false,
                            sweep: Bool = true, resume: Bool = false, legacy: String? = nil) -> Setting {
        let option = "--" + name
        return Setting(name: name, help: help, kind: .flag, placeholder: "", sweepable: sweep, changesOnResume: resume, commandLine: true,
                       legacyKey: legacy ?? path(keyPath),
                       defaultText: { ($0[keyPath: keyPath] != inverted).settingText },
                       parse: { c, text in
                           // "" for a bare --flag; true/false from --flag=VALUE, a sweep or a file
                           guard let on = text.isEmpty ? true : Bool(settingText: text) else {
                               throw InvalidOption("\(option) '\(text)': expected true or false")
                           }
                           c[keyPath: keyPath] = on != inverted
                       },
                       check: { _ in }, whenGiven: { _ in },
                       encode: { c, box in try box.encode(c[keyPath: keyPath] != inverted, forKey: SettingKey(name)) },
                       decode: { c, box, key in
                           // the flag's value under its name; the field's own value in an old file
                           let v = try box.decode(Bool.self, forKey: key)
                           c[keyPath: keyPath] = key.stringValue == name ? v != inverted : v
                       },
                       differs: { $0[keyPath: keyPath] != $1[keyPath: keyPath] })
    }

    /// A preset: `--name` changes several fields (`apply`) before the other settings of the
    /// command line apply, so that they can still change any of them. Not stored (the fields are).
    public static func preset(_ name: String, _ help: String, apply: @escaping (inout Config) -> Void) -> Setting {
        Setting(name: name, help: help, kind: .preset, placeholder: "", sweepable: false, changesOnResume: false, commandLine: true,
                legacyKey: name, defaultText: { _ in "" }, parse: { c, _ in apply(&c) }, check: { _ in }, whenGiven: { _ in },
                encode: { _, _ in }, decode: { _, _, _ in }, differs: { _, _ in false })
    }

    /// This setting of a part of a larger configuration (the AC-Flow options inside the
    /// fine-tuning ones): the same name and behaviour; its legacy key gets the part's path first.
    public func lifted<Outer>(_ part: WritableKeyPath<Outer, Config>) -> Setting<Outer> {
        let (parse, check, whenGiven, encode, decode, differs, text) = (self.parse, self.check, self.whenGiven, self.encode, self.decode, self.unequal, self.defaultText)
        let clear = self.clear
        return Setting<Outer>(name: name, help: help, kind: kind, placeholder: placeholder, sweepable: sweepable,
                              changesOnResume: changesOnResume, commandLine: commandLine,
                              legacyKey: Setting<Outer>.path(part) + "." + legacyKey,
                              defaultText: { text($0[keyPath: part]) },
                              parse: { o, s in try parse(&o[keyPath: part], s) },
                              check: { o in try check(o[keyPath: part]) },
                              whenGiven: { o in try whenGiven(o[keyPath: part]) },
                              encode: { o, box in try encode(o[keyPath: part], &box) },
                              decode: { o, box, key in try decode(&o[keyPath: part], box, key) },
                              differs: { differs($0[keyPath: part], $1[keyPath: part]) },
                              clear: clear.map { clear in { o in clear(&o[keyPath: part]) } })
    }
}

/// The settings of a configuration, in the order the help lists them and the JSON holds them.
public struct SettingTable<Config>: @unchecked Sendable {
    public let settings: [Setting<Config>]
    let defaults: Config

    public init(_ settings: [Setting<Config>], defaults: Config) {
        self.settings = settings
        self.defaults = defaults
        var seen: Set<String> = []
        for s in settings { precondition(seen.insert(s.name).inserted, "two settings are named \(s.name)") }
    }

    public subscript(name: String) -> Setting<Config>? { settings.first { $0.name == name } }

    /// Every stored setting (not presets).
    public var stored: [Setting<Config>] { settings.filter { $0.kind != .preset } }
    /// The settings a sweep may vary.
    public var sweepable: [Setting<Config>] { settings.filter { $0.sweepable && $0.kind != .preset } }
    /// The options a resumed run (or one started from a saved configuration) may be given.
    public var changeableOnResume: [Setting<Config>] { settings.filter(\.changesOnResume) }

    /// The configuration `base` with the command-line words `arguments` applied ("--name VALUE",
    /// "--name=VALUE", "--flag", "--flag=false"); returns it with the names of the settings given. An unknown
    /// option, a missing or unreadable value, or one whose `whenGiven` check fails is an error;
    /// values out of range are left to `validate`. A setting given twice takes the later value.
    public func parse(_ arguments: [String], into base: Config) throws -> (Config, [String]) {
        var given: [(Setting<Config>, String)] = []
        var i = 0
        while i < arguments.count {
            let word = arguments[i]
            guard word.hasPrefix("--"), word.count > 2 else {
                throw InvalidOption("unexpected argument '\(word)'" + (word.hasPrefix("-") ? "" : " (every setting is --NAME VALUE)"))
            }
            let body = word.dropFirst(2)
            let parts = body.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            guard let s = self[parts[0]], s.commandLine else { throw InvalidOption("unknown option '--\(parts[0])'\(suggestion(parts[0]))") }
            // given again: the last one counts (a script's defaults, then the user's overrides)
            given.removeAll { $0.0.name == s.name }
            switch s.kind {
            case .value:
                if parts.count == 2 { given.append((s, parts[1])) } else {
                    guard i + 1 < arguments.count else { throw InvalidOption("\(s.option) needs a value (<\(s.placeholder)>)") }
                    i += 1
                    given.append((s, arguments[i]))
                }
            case .flag:
                // "--flag", or "--flag=true|false": a script's default a user can turn off again
                if parts.count == 2 && parts[1].isEmpty { throw InvalidOption("\(s.option)= needs true or false after the '='") }
                given.append((s, parts.count == 2 ? parts[1] : ""))
            case .preset:
                guard parts.count == 1 else { throw InvalidOption("\(s.option) takes no value") }
                given.append((s, ""))
            }
            i += 1
        }
        // the values, then the presets (which may read them, say the run's length), then the
        // values again over what the presets changed
        var c = base
        for (s, text) in given where s.kind != .preset { try s.set(&c, text) }
        for (s, text) in given where s.kind == .preset { try s.set(&c, text) }
        for (s, text) in given where s.kind != .preset { try s.set(&c, text) }
        // (the range checks are the configuration's `validate`, when the command runs)
        for (s, _) in given { try s.whenGiven(c) }
        return (c, given.map(\.0.name))
    }

    func suggestion(_ name: String) -> String {
        let close = settings.filter { $0.commandLine && editDistance($0.name, name) <= 2 }.map(\.option)
        return close.isEmpty ? "" : " (did you mean \(close.joined(separator: " or "))?)"
    }

    /// Every setting's range check, in table order (the first bad one is the error).
    public func validate(_ c: Config) throws { for s in settings { try s.validate(c) } }

    /// The names of the settings in which `a` and `b` differ.
    public func differences(_ a: Config, _ b: Config) -> [String] { stored.filter { $0.differs(a, b) }.map(\.name) }

    /// The settings' help, one entry per option in ArgumentParser's layout, defaults from the
    /// configuration's initial values.
    public func help(width: Int = 79) -> String {
        var out = ""
        for s in settings where s.commandLine {
            let head = "  " + s.option + (s.kind == .value ? " <\(s.placeholder)>" : "")
            var text = s.help
            if s.kind == .value { text += " (default: \(s.text(of: defaults)))" }
            if s.changesOnResume { text += " May be given again to a resumed run." }
            let indent = 28
            var lines: [String] = []
            var line = ""
            for w in text.split(separator: " ") {
                if !line.isEmpty && line.count + 1 + w.count > width - indent { lines.append(line); line = "" }
                line += (line.isEmpty ? "" : " ") + w
            }
            if !line.isEmpty { lines.append(line) }
            let pad = String(repeating: " ", count: indent)
            if head.count < indent - 1 {
                out += head + String(repeating: " ", count: indent - head.count) + (lines.first ?? "") + "\n"
                for l in lines.dropFirst() { out += pad + l + "\n" }
            } else {
                out += head + "\n" + lines.map { pad + $0 + "\n" }.joined()
            }
        }
        return out
    }

    /// Writes every stored setting under its name, in table order.
    public func encode(_ c: Config, to encoder: Encoder, extra: (inout KeyedEncodingContainer<SettingKey>) throws -> Void = { _ in }) throws {
        var box = encoder.container(keyedBy: SettingKey.self)
        for s in stored { try s.encode(c, &box) }
        try extra(&box)
    }

    /// Reads a configuration: each setting under its name, or (a file written before the settings
    /// were named) under its legacy key; absent keys keep the default. A key that is neither a
    /// setting nor one of `extraKeys` is an error naming it (a misspelt setting in a saved
    /// configuration must not pass silently as its default).
    public func decode(from decoder: Decoder, extraKeys: Set<String> = []) throws -> Config {
        let box = try decoder.container(keyedBy: SettingKey.self)
        var c = defaults
        // an older file: a key that is no setting's name but begins a setting's legacy key
        let legacyRoots = Set(stored.map { String($0.legacyKey.split(separator: ".")[0]) })
        let legacy = box.allKeys.contains { k in
            self[k.stringValue] == nil && !extraKeys.contains(k.stringValue) && legacyRoots.contains(k.stringValue)
        }
        if !legacy {
            for k in box.allKeys where self[k.stringValue] == nil && !extraKeys.contains(k.stringValue) {
                throw DecodingError.dataCorruptedError(forKey: k, in: box, debugDescription: "unknown setting '\(k.stringValue)'\(suggestion(k.stringValue))")
            }
            for s in stored where box.contains(SettingKey(s.name)) { try s.decode(&c, box, SettingKey(s.name)) }
            return c
        }
        // the layout of older files: the fields' own names, the SDE and AC-Flow options nested; an
        // optional field they leave out was nil (they wrote nil by leaving the key out)
        for s in stored {
            s.clear?(&c)
            var container = box
            let path = s.legacyKey.split(separator: ".").map(String.init)
            var found = true
            for part in path.dropLast() {
                guard container.contains(SettingKey(part)) else { found = false; break }
                container = try container.nestedContainer(keyedBy: SettingKey.self, forKey: SettingKey(part))
            }
            if found, let last = path.last, container.contains(SettingKey(last)) { try s.decode(&c, container, SettingKey(last)) }
        }
        return c
    }
}

/// The Levenshtein distance between two words (for "did you mean").
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    var row = Array(0...b.count)
    for i in 1...max(a.count, 1) where !a.isEmpty {
        var prev = row[0]
        row[0] = i
        for j in stride(from: 1, through: b.count, by: 1) {
            let cur = row[j]
            row[j] = min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] == b[j - 1] ? 0 : 1))
            prev = cur
        }
    }
    return a.isEmpty ? b.count : row[b.count]
}
