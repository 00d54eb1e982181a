import Foundation
import Tensor
import Imaging
import Shapes

public struct DataError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A folder of captioned images, decoded and resized once: every PNG and JPEG under it
/// (subfolders too; hidden files and folders are skipped), each with its caption from
/// `NAME.txt` beside it (kohya-ss's layout: the whole file, lines joined) or from the line of a
/// `metadata.jsonl` at the top that names it (Hugging Face's imagefolder:
/// {"file_name": "a/b.png", "text": "..."}; "caption" is read as well); metadata.jsonl wins
/// where both give one. An image is composited over `background` where it has alpha, its
/// centred square resized to `size` with an area filter.
///
/// The decoded images go into a cache beside the data (.flowtune-cache/), with a checksum of
/// its pixels and a fingerprint of the folder (every image and caption file's path, size and
/// modification time, and the options): it is read instead of the images while the folder is
/// unchanged, and rebuilt when anything in it changes.
public struct ImageFolder {
    public struct Entry: Codable, Equatable, Sendable {
        public var file: String          // path relative to the folder
        public var caption: String
    }

    public let root: URL
    public let size: Int
    public let background: [UInt8]
    /// The usable images, sorted by path.
    public let entries: [Entry]
    /// (count, size, size, 3) 8-bit RGB.
    public let pixels: [UInt8]
    /// The bad files left out (one line each), when `skipBad`.
    public let problems: [String]
    public let fingerprint: String
    /// A checksum of what the folder holds, as read: every usable image's path, caption and
    /// pixels. The same images give the same value wherever the folder was built (the
    /// fingerprint changes with every file's time; this does not).
    public var contentChecksum: String {
        var c = crc32(pixels)
        for e in entries { c = Array((e.file + "\u{0}" + e.caption + "\u{0}").utf8).withUnsafeBytes { crc32($0, continuing: c) } }
        return String(format: "%08x", c)
    }
    /// What happened to the cache: "built", "reused", or why it could not be written.
    public let cacheNote: String

    public var count: Int { entries.count }
    public var valuesPerImage: Int { size * size * 3 }

    /// Image files read: by extension, any case.
    public static let imageExtensions: Set<String> = ["png", "jpg", "jpeg"]

    /// Reads the folder at `path` (through its cache where that is current). Bad files — an
    /// image that does not decode, one without a caption, an empty caption — are an error
    /// naming each, unless `skipBad`: then they are left out and listed in `problems`. A
    /// folder with no image is an error either way.
    public init(path: String, size: Int, background: (UInt8, UInt8, UInt8) = (255, 255, 255), skipBad: Bool = false) throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw DataError("\(path): no such folder") }
        guard isDir.boolValue else { throw DataError("\(path): not a folder (--data takes a folder of images with captions)") }
        guard (8...1024).contains(size) else { throw DataError("image size \(size) is outside 8...1024") }
        root = URL(fileURLWithPath: path).standardizedFileURL
        self.size = size
        self.background = [background.0, background.1, background.2]
        let listing = try Self.list(root)
        guard !listing.images.isEmpty else {
            throw DataError("\(path): no image (looked for .png, .jpg and .jpeg files, in subfolders too)")
        }
        fingerprint = Self.fingerprint(listing, size: size, background: self.background)
        let cacheURL = Self.cacheURL(root, size: size, background: self.background)
        let decoded: Decoded
        var note: String
        if let cached = Self.readCache(cacheURL, fingerprint: fingerprint) {
            decoded = cached; note = "reused"
        } else {
            decoded = try Self.decode(root, listing, size: size, background: background)
            do {
                try Self.writeCache(decoded, fingerprint: fingerprint, to: cacheURL)
                note = "built"
            } catch {
                note = "not written (\(error)); the images are decoded again next time"
            }
        }
        cacheNote = note
        guard decoded.problems.isEmpty || skipBad else {
            let n = decoded.problems.count
            throw DataError("\(path): \(n) bad file\(n == 1 ? "" : "s") (fix \(n == 1 ? "it" : "them"), or give --skip-bad to leave \(n == 1 ? "it" : "them") out):\n"
                            + decoded.problems.map { "  " + $0 }.joined(separator: "\n"))
        }
        guard !decoded.entries.isEmpty else { throw DataError("\(path): none of the \(listing.images.count) images is usable:\n" + decoded.problems.map { "  " + $0 }.joined(separator: "\n")) }
        entries = decoded.entries; pixels = decoded.pixels; problems = decoded.problems
    }

    /// Image `i` with values in [-1, 1] (the model's range), (size, size, 3).
    public func image(_ i: Int) -> [Float] {
        [Float](unsafeUninitializedCapacity: valuesPerImage) { buffer, n in
            copyImage(i, into: buffer.baseAddress!)
            n = valuesPerImage
        }
    }

    /// Writes image `i` with values in [-1, 1] to `out` (size x size x 3 values), mirrored left to
    /// right when `flipped`.
    public func copyImage(_ i: Int, into out: UnsafeMutablePointer<Float>, flipped: Bool = false) {
        let S = size, base = i * valuesPerImage
        pixels.withUnsafeBufferPointer { px in
            for y in 0..<S {
                for x in 0..<S {
                    let src = base + (y * S + (flipped ? S - 1 - x : x)) * 3, dst = (y * S + x) * 3
                    for c in 0..<3 { out[dst + c] = Float(px[src + c]) / 127.5 - 1 }
                }
            }
        }
    }

    /// The held-out split: a shuffle by `seed` of the images (in path order), whose first
    /// ceil(fraction x count) are held out (at least one when the fraction is above 0); the rest
    /// train. Both sorted. Fewer than two images, or a fraction that leaves no training image,
    /// is an error.
    public func split(heldOutFraction: Double, seed: UInt64) throws -> (train: [Int], heldOut: [Int]) {
        guard (0..<1).contains(heldOutFraction) else { throw DataError("the held-out fraction must be in [0, 1), got \(heldOutFraction)") }
        var order = Array(0..<count)
        var rng = RNG(seed: seed).split(0x5B17)
        rng.shuffle(&order)
        let k = heldOutFraction == 0 ? 0 : max(1, Int((heldOutFraction * Double(count)).rounded(.up)))
        guard k < count else { throw DataError("\(root.path): holding out \(k) of \(count) images leaves none to train on") }
        return (Array(order[k...]).sorted(), Array(order[..<k]).sorted())
    }

    // MARK: - listing and fingerprint

    struct Listing {
        var images: [String] = []                      // relative paths, sorted
        var stats: [String: (size: Int, mtime: Int64)] = [:]  // every image and caption file
        var metadata: [String: String] = [:]           // metadata.jsonl captions by relative path
        var metadataProblems: [String] = []
    }

    static func list(_ root: URL) throws -> Listing {
        var out = Listing()
        let keys: [URLResourceKey] = [.isRegularFileKey, .fileSizeKey, .contentModificationDateKey]
        guard let walk = FileManager.default.enumerator(at: root, includingPropertiesForKeys: keys, options: [.skipsHiddenFiles]) else {
            throw DataError("\(root.path): cannot read the folder")
        }
        let prefix = root.path.hasSuffix("/") ? root.path : root.path + "/"
        for case let url as URL in walk {
            let v = try? url.resourceValues(forKeys: Set(keys))
            guard v?.isRegularFile == true else { continue }
            let rel = String(url.standardizedFileURL.path.dropFirst(prefix.count))
            let ext = url.pathExtension.lowercased()
            let stat = (v?.fileSize ?? 0, Int64(((v?.contentModificationDate?.timeIntervalSince1970 ?? 0) * 1e9).rounded()))
            if imageExtensions.contains(ext) { out.images.append(rel); out.stats[rel] = stat }
            else if ext == "txt" || rel == "metadata.jsonl" { out.stats[rel] = stat }
        }
        out.images.sort()
        if out.stats["metadata.jsonl"] != nil { try readMetadata(root, into: &out) }
        return out
    }

    static func readMetadata(_ root: URL, into out: inout Listing) throws {
        let url = root.appendingPathComponent("metadata.jsonl")
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { throw DataError("\(url.path): cannot read it as UTF-8 text") }
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.isEmpty { continue }
            guard let o = (try? JSONSerialization.jsonObject(with: Data(trimmed.utf8))) as? [String: Any],
                  let file = o["file_name"] as? String else {
                throw DataError("\(url.path) line \(n + 1): not a JSON object with a \"file_name\"")
            }
            guard let text = (o["text"] ?? o["caption"]) as? String else {
                throw DataError("\(url.path) line \(n + 1): no \"text\" (or \"caption\") string for \(PromptError.quoted(file))")
            }
            var rel = file
            while rel.hasPrefix("./") { rel.removeFirst(2) }
            out.metadata[rel] = text
        }
    }

    static func fingerprint(_ l: Listing, size: Int, background: [UInt8]) -> String {
        var text = "flowtune image cache \(cacheVersion) size \(size) background \(background)\n"
        for (path, s) in l.stats.sorted(by: { $0.key < $1.key }) { text += "\(path)\t\(s.size)\t\(s.mtime)\n" }
        return String(format: "%08x", crc32(Array(text.utf8)))
    }

    // MARK: - decoding

    struct Decoded {
        var entries: [Entry]
        var pixels: [UInt8]
        var problems: [String]
    }

    /// The caption of image `rel` and where it came from, or why there is none.
    static func caption(of rel: String, _ root: URL, _ l: Listing) -> Result<String, DataError> {
        if let text = l.metadata[rel] {
            return WordVocabulary.words(of: text).isEmpty ? .failure(DataError("\(rel): its caption in metadata.jsonl has no word")) : .success(text)
        }
        let txt = (rel as NSString).deletingPathExtension + ".txt"
        guard l.stats[txt] != nil else {
            return .failure(DataError("\(rel): no caption (no \(txt), and no line of metadata.jsonl names it)"))
        }
        guard let raw = try? String(contentsOf: root.appendingPathComponent(txt), encoding: .utf8) else {
            return .failure(DataError("\(rel): its caption \(txt) is not UTF-8 text"))
        }
        let text = raw.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.joined(separator: " ")
        return WordVocabulary.words(of: text).isEmpty ? .failure(DataError("\(rel): its caption \(txt) is empty (no word)")) : .success(text)
    }

    static func decode(_ root: URL, _ l: Listing, size: Int, background: (UInt8, UInt8, UInt8)) throws -> Decoded {
        let n = l.images.count, v = size * size * 3
        var results = [Result<Entry, DataError>?](repeating: nil, count: n)
        var pixels = [UInt8](repeating: 0, count: n * v)
        results.withUnsafeMutableBufferPointer { rp in
            pixels.withUnsafeMutableBufferPointer { pp in
                let r = rp.baseAddress!, p = pp.baseAddress!
                parallelFor(n) { range in
                    for i in range {
                        let rel = l.images[i]
                        switch caption(of: rel, root, l) {
                        case .failure(let e): r[i] = .failure(e)
                        case .success(let text):
                            do {
                                let bytes = try Data(contentsOf: root.appendingPathComponent(rel))
                                let img = try RGBAImage(fileData: [UInt8](bytes))
                                let rgb = centreCropAreaResize(img.composited(over: background), width: img.width, height: img.height, to: size)
                                for k in 0..<v { p[i * v + k] = UInt8(max(0, min(255, rgb[k].rounded()))) }
                                r[i] = .success(Entry(file: rel, caption: text))
                            } catch {
                                r[i] = .failure(DataError("\(rel): \(error)"))
                            }
                        }
                    }
                }
            }
        }
        var out = Decoded(entries: [], pixels: [], problems: [])
        out.pixels.reserveCapacity(n * v)
        for (i, r) in results.enumerated() {
            switch r! {
            case .success(let e): out.entries.append(e); out.pixels += pixels[(i * v)..<((i + 1) * v)]
            case .failure(let e): out.problems.append(e.description)
            }
        }
        return out
    }

    // MARK: - the cache

    static let cacheVersion = 1
    static let magic = Array("FLOWTUNE-IMAGES\n".utf8)

    static func cacheURL(_ root: URL, size: Int, background: [UInt8]) -> URL {
        root.appendingPathComponent(".flowtune-cache/images-\(size)px-\(background.map { String(format: "%02x", $0) }.joined()).bin")
    }

    struct CacheHeader: Codable {
        var version: Int
        var fingerprint: String
        var entries: [Entry]
        var problems: [String]
        var pixelsCRC32: String
    }

    /// The cache's contents if it is of this folder as it is now and its pixels are intact; nil otherwise.
    static func readCache(_ url: URL, fingerprint: String) -> Decoded? {
        guard let data = try? [UInt8](Data(contentsOf: url)), data.count > magic.count + 8, Array(data[..<magic.count]) == magic else { return nil }
        var headerLength = 0
        for k in 0..<8 { headerLength |= Int(data[magic.count + k]) << (8 * k) }
        let start = magic.count + 8
        guard headerLength > 0, headerLength <= data.count - start,
              let h = try? JSONDecoder().decode(CacheHeader.self, from: Data(data[start..<(start + headerLength)])),
              h.version == cacheVersion, h.fingerprint == fingerprint else { return nil }
        let pixels = Array(data[(start + headerLength)...])
        guard !h.entries.isEmpty || !h.problems.isEmpty, pixels.count % max(h.entries.count, 1) == 0,
              String(format: "%08x", crc32(pixels)) == h.pixelsCRC32 else { return nil }
        return Decoded(entries: h.entries, pixels: pixels, problems: h.problems)
    }

    static func writeCache(_ d: Decoded, fingerprint: String, to url: URL) throws {
        let header = try JSONEncoder().encode(CacheHeader(version: cacheVersion, fingerprint: fingerprint, entries: d.entries,
                                                          problems: d.problems, pixelsCRC32: String(format: "%08x", crc32(d.pixels))))
        var bytes = magic
        for k in 0..<8 { bytes.append(UInt8((header.count >> (8 * k)) & 0xFF)) }
        bytes += [UInt8](header)
        bytes += d.pixels
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try writeAtomically(bytes, to: url)
    }
}
