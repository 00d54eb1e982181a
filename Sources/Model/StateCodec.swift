import Foundation
import Tensor

/// One way to keep an optimiser and a random stream in a safetensors file, shared by
/// pretraining, fine-tuning and the AC-Flow critic: AdamW's moments as tensors PREFIX.m and
/// PREFIX.v and its step count as metadata (PREFIX with '.' as '_') + "_step"; an RNG's four
/// state words as one metadata string.
extension SafeTensorsFile {
    static func stepKey(_ prefix: String) -> String { prefix.replacingOccurrences(of: ".", with: "_") + "_step" }

    public mutating func add(_ optimizer: AdamW, as prefix: String) {
        add(prefix + ".m", shape: [optimizer.m.count], values: optimizer.m)
        add(prefix + ".v", shape: [optimizer.v.count], values: optimizer.v)
        metadata[Self.stepKey(prefix)] = String(optimizer.step)
    }

    /// Restores the moments and step of `optimizer`, which must have the stored size.
    public func restore(_ optimizer: inout AdamW, as prefix: String, source: String) throws {
        guard let m = tensors[prefix + ".m"], let v = tensors[prefix + ".v"],
              let step = metadata[Self.stepKey(prefix)].flatMap(Int.init), step >= 0 else {
            throw CheckpointError("\(source): the optimiser state '\(prefix)' is missing or incomplete")
        }
        guard m.values.count == optimizer.m.count, v.values.count == optimizer.v.count else {
            throw CheckpointError("\(source): the optimiser state '\(prefix)' has \(m.values.count) values, this run needs \(optimizer.m.count)")
        }
        optimizer.m = m.values; optimizer.v = v.values; optimizer.step = step
    }

    public mutating func add(_ rng: RNG, as key: String) {
        metadata[key] = rng.stateWords.map(String.init).joined(separator: ",")
    }

    /// Checks a resume's options against those a state stored as JSON under `key`: every one
    /// but `ignoring` must be the run's (`sharedOnly`: only options both know are compared, for
    /// states of older versions). False when the state stored none.
    public func checkResumeOptions<T: Encodable>(_ current: T, key: String, ignoring: Set<String> = ["steps"], sharedOnly: Bool,
                                                 source: String) throws -> Bool {
        guard let stored = metadata[key].flatMap({ try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }),
              let now = jsonDictionary(current) else { return false }
        let differing = differingKeys(now, stored, ignoring: ignoring, sharedOnly: sharedOnly)
        guard differing.isEmpty else {
            let list = differing.map { "\($0) \(jsonText(now[$0])) (the run has \(jsonText(stored[$0])))" }.joined(separator: ", ")
            throw CheckpointError("\(source): resumed with other options than the run was started with: \(list); resume with the run's options (only --steps may change)")
        }
        return true
    }

    public func rng(_ key: String, source: String) throws -> RNG {
        guard let words = metadata[key]?.split(separator: ",").compactMap({ UInt64($0) }), words.count == 4 else {
            throw CheckpointError("\(source): the random state '\(key)' is missing or unreadable")
        }
        return RNG(state: words)
    }
}
