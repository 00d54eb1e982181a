#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Mean checker scores per task type and overall (the object `check-data --json` and
/// `evaluate --json` print).
public struct TaskScores: Sendable {
    public private(set) var sums: [Task: Double] = [:]
    public private(set) var counts: [Task: Int] = [:]
    public init() {}

    public mutating func add(_ task: Task, _ score: Float) {
        sums[task, default: 0] += Double(score); counts[task, default: 0] += 1
    }
    public var images: Int { counts.values.reduce(0, +) }
    public func mean(_ task: Task) -> Double? { counts[task].map { sums[task]! / Double($0) } }
    public var overall: Double { images == 0 ? 0 : sums.values.reduce(0, +) / Double(images) }

    /// {"overall": x, "by_task": {"single": x, "two_objects": x, "counting": x, "position": x}, "images": n}
    /// (a task with no images is null).
    public var json: String {
        let parts = Task.allCases.map { t in "\"\(t.rawValue)\": " + (mean(t).map { String(format: "%.4f", $0) } ?? "null") }
        return "{\"overall\": \(String(format: "%.4f", overall)), \"by_task\": {\(parts.joined(separator: ", "))}, \"images\": \(images)}"
    }

    /// A small aligned table for people.
    public var table: String {
        var lines = ["task          mean score  images"]
        for t in Task.allCases {
            let m = mean(t).map { String(format: "%.3f", $0) } ?? "  -  "
            lines.append(t.rawValue.padding(toLength: 14, withPad: " ", startingAt: 0) + m.padding(toLength: 12, withPad: " ", startingAt: 0) + String(counts[t] ?? 0))
        }
        lines.append("overall       " + String(format: "%.3f", overall).padding(toLength: 12, withPad: " ", startingAt: 0) + String(images))
        return lines.joined(separator: "\n")
    }
}

/// The checker's verdicts on a set of samples, prompt by prompt: the mean per task type and
/// overall (`scores`), the pass rate of each kind of requirement per task type, and each prompt's
/// mean score (the unit a paired comparison of two models resamples).
public struct CheckerTally: Sendable {
    public private(set) var scores = TaskScores()
    /// "task / kind" (e.g. "counting / count") -> (passed, checked).
    public private(set) var requirements: [String: (passed: Int, checked: Int)] = [:]
    /// Each prompt's task and mean score, in the order the prompts were added.
    public private(set) var prompts: [(task: Task, mean: Double)] = []

    /// Checks every image of every prompt (`images[i]` are the samples of `specs[i]`).
    public init(checker: Checker, specs: [PromptSpec], images: [[[Float]]]) {
        for (spec, imgs) in zip(specs, images) {
            var sum = 0.0
            for img in imgs {
                let r = checker.check(img, spec: spec)
                scores.add(spec.task, r.score)
                sum += Double(r.score)
                for q in r.requirements {
                    let key = "\(spec.task.rawValue) / \(q.kind)"
                    requirements[key, default: (0, 0)].passed += q.passed ? 1 : 0
                    requirements[key, default: (0, 0)].checked += 1
                }
            }
            prompts.append((spec.task, imgs.isEmpty ? 0 : sum / Double(imgs.count)))
        }
    }

    public func passRate(_ key: String) -> Double? {
        requirements[key].flatMap { $0.checked > 0 ? Double($0.passed) / Double($0.checked) : nil }
    }
}
