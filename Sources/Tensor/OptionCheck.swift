/// Checks of option values, each failing with a message that names the option and the value
/// given: "--lr must be a positive finite number, got nan". Configurations (fine-tuning,
/// AC-Flow, pretraining) and the CLI validate every value with these before any work starts.
public struct InvalidOption: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

public enum OptionCheck {
    /// The largest batch any command accepts: its activations alone would need terabytes, and
    /// sizes computed from it (batch x tokens x width) stay far from overflowing.
    public static let maxBatch = 1 << 20
    /// The most sampler steps (ODE or SDE) a trajectory may take: a rollout keeps every step's
    /// state, so memory grows with them; 1000 is a hundred times what flow models use.
    public static let maxSteps = 1000

    public static func atMost(_ name: String, _ value: Int, _ maximum: Int) throws {
        guard value <= maximum else { throw InvalidOption("\(name) must be at most \(maximum), got \(value)") }
    }
    public static func atLeast(_ name: String, _ value: Int, _ minimum: Int) throws {
        guard value >= minimum else { throw InvalidOption("\(name) must be at least \(minimum), got \(value)") }
    }
    public static func positive(_ name: String, _ value: Int) throws {
        guard value > 0 else { throw InvalidOption("\(name) must be positive, got \(value)") }
    }
    public static func nonNegative(_ name: String, _ value: Int) throws {
        guard value >= 0 else { throw InvalidOption("\(name) must not be negative, got \(value)") }
    }
    public static func positive(_ name: String, _ value: Float) throws {
        guard value.isFinite, value > 0 else { throw InvalidOption("\(name) must be a positive finite number, got \(value)") }
    }
    public static func positive(_ name: String, _ value: Double) throws {
        guard value.isFinite, value > 0 else { throw InvalidOption("\(name) must be a positive finite number, got \(value)") }
    }
    public static func nonNegative(_ name: String, _ value: Float) throws {
        guard value.isFinite, value >= 0 else { throw InvalidOption("\(name) must be a finite number >= 0, got \(value)") }
    }
    public static func finite(_ name: String, _ value: Float) throws {
        guard value.isFinite else { throw InvalidOption("\(name) must be a finite number, got \(value)") }
    }
    /// `value` in [lower, upper], or [lower, upper) when `upperOpen`.
    public static func within(_ name: String, _ value: Float, _ lower: Float, _ upper: Float, upperOpen: Bool = false) throws {
        guard value.isFinite, value >= lower, upperOpen ? value < upper : value <= upper else {
            throw InvalidOption("\(name) must be in [\(lower), \(upper)\(upperOpen ? ")" : "]"), got \(value)")
        }
    }
}
