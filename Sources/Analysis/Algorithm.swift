import Tensor

/// The fine-tuning algorithms. The raw values are the names on the command line and in
/// config.json and metrics.jsonl.
public enum Algorithm: String, Codable, CaseIterable, Sendable, CustomStringConvertible, SettingChoice {
    case grpo
    case grpoGuard = "grpo-guard"
    case acflow

    public var description: String { rawValue }

    /// The PPO clip range used when --clip-range is not given.
    public var defaultClipRange: Float { self == .grpoGuard ? 3e-6 : 1e-4 }
}

/// The per-iteration chart a run's report draws of its algorithm's own metrics.
public enum DiagnosticsChart: Sendable {
    /// One curve per trained SDE step of the per-step statistic `key`.
    case perStep(key: String, title: String, yLabel: String)
    /// One curve per named metric.
    case scalars([String], title: String)
}

