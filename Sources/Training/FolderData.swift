import Foundation
import Analysis
import Tensor
import Model
import Shapes
import Dataset

/// The folder of images a model was trained on, read again (through its cache) and checked to
/// hold the same images: its training and held-out split, as captions (prompts in the model's
/// vocabulary) and as images (what the gold metrics compare against).
public struct FolderData {
    public let images: ImageFolder
    public let train: [Int]
    public let heldOut: [Int]

    /// Prompt-list names that stand for a data model's captions wherever a prompt file is read.
    public static let trainCaptions = "data:train", heldOutCaptions = "data:held-out"

    /// `folder`: where the folder is now (nil: where the model file says it was).
    public init(model: DiT, source: String, folder: String? = nil) throws {
        guard let p = model.trainedOn else {
            throw DataError("\(source) is a shapes-world model: it has no folder of images (\(Self.trainCaptions) and \(Self.heldOutCaptions) name a folder model's captions)")
        }
        let path = folder ?? p.folder
        guard FileManager.default.fileExists(atPath: path) else {
            throw DataError("\(path), the folder \(source) was trained on, is missing: give its new place with --data (scripts/emoji-dataset.sh rebuilds the emoji folder)")
        }
        let bg = p.background.count == 3 ? (p.background[0], p.background[1], p.background[2]) : (255, 255, 255)
        images = try ImageFolder(path: path, size: model.config.imageSize, background: bg, skipBad: p.skipBad)
        guard images.contentChecksum == p.checksum else {
            throw DataError("\(path) holds other images than \(source) was trained on (checksum \(images.contentChecksum), the model's \(p.checksum)): give --data the folder it was trained on")
        }
        let byFile = Dictionary(uniqueKeysWithValues: images.entries.enumerated().map { ($1.file, $0) })
        heldOut = try p.heldOut.map { f in
            guard let i = byFile[f] else { throw DataError("\(path): the held-out image \(f) is missing") }
            return i
        }.sorted()
        let held = Set(heldOut)
        train = images.entries.indices.filter { !held.contains($0) }
    }

    /// The seed of the floor's draw of training images (the in-run gold metrics and `evaluate`).
    public static let floorSeed: UInt64 = 0x5EED_DA7B

    /// The first `count` training images of a shuffle by `rng`: real images to set against the
    /// held-out ones, as many as a measurement generates (the Frechet distance's floor).
    public func floorImages(count: Int, rng: inout RNG) -> [[Float]] {
        var order = train
        rng.shuffle(&order)
        return order.prefix(count).map(images.image)
    }

    /// The captions of the split as prompts of the model's vocabulary (each caption once, in path order).
    public func prompts(_ indices: [Int], vocabulary: TextVocabulary, name: String) throws -> PromptFile {
        var seen = Set<String>(), entries: [Prompt] = []
        for i in indices where seen.insert(images.entries[i].caption).inserted {
            entries.append(try vocabulary.prompt(images.entries[i].caption))
        }
        return PromptFile(path: name, entries: entries)
    }

    /// A prompt list for a model: `data:train` or `data:held-out` (a folder model's captions),
    /// or a file read with the model's vocabulary.
    public static func promptFile(_ path: String, model: DiT, source: String, cached: FolderData? = nil) throws -> PromptFile {
        guard path == trainCaptions || path == heldOutCaptions else { return try PromptFile(path: path, vocabulary: model.vocabulary) }
        let data = try cached ?? FolderData(model: model, source: source)
        return try data.prompts(path == trainCaptions ? data.train : data.heldOut, vocabulary: model.vocabulary, name: path)
    }

    /// One line naming the words of `file`'s prompts that `vocabulary` lacks (nil: none).
    public static func unknownWordsNote(_ file: PromptFile) -> String? {
        let u = file.unknownWords
        guard !u.isEmpty else { return nil }
        let top = u.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.prefix(8).map { "\($0.key) (\($0.value))" }
        return "\(file.path): \(u.count) word\(u.count == 1 ? "" : "s") the model's vocabulary lacks, read as unknown: \(top.joined(separator: ", "))\(u.count > 8 ? ", ..." : "")"
    }
}
