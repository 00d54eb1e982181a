import Testing
import Foundation
import Analysis
import Tensor
import Imaging
import Shapes
import Rewards
import Training

/// 32x32 images as a batch, and prompts of the grammar.
func batch(_ images: [[Float]]) -> ImageBatch { ImageBatch(images: images, size: 32) }
func prompts(_ n: Int, _ text: String = "a red circle on a blue background") -> [Prompt] { Array(repeating: try! Prompt(text), count: n) }

@Suite struct RewardTests {
    static let flat = [Float](repeating: 0.2, count: 32 * 32 * 3)
    static let noise: [Float] = { var r = RNG(seed: 1); return (0..<(32 * 32 * 3)).map { _ in r.uniform(-1, 1) } }()

    @Test func jpegRewardsOrderFlatAndNoiseImages() throws {
        let comp = try JPEGScorer(compressible: true).score(batch([Self.flat, Self.noise]), prompts: prompts(2))
        let incomp = try JPEGScorer(compressible: false).score(batch([Self.flat, Self.noise]), prompts: prompts(2))
        #expect(comp[0] > comp[1])            // the flat image compresses better
        #expect(incomp[1] > incomp[0])
        #expect(comp[0] == -incomp[0])
        // kB at quality 95
        let bytes = try RGBImage(signedUnit: Self.noise, width: 32, height: 32).jpegData(quality: 95).count
        #expect(abs(incomp[1] - Float(bytes) / 1000) < 1e-6)
    }

    @Test func brightnessSaturationAndShapeEval() throws {
        let white = [Float](repeating: 1, count: 32 * 32 * 3), black = [Float](repeating: -1, count: 32 * 32 * 3)
        #expect(try BrightnessScorer().score(batch([white, black]), prompts: prompts(2)) == [1, 0])
        var red = [Float](repeating: -1, count: 32 * 32 * 3)
        for p in 0..<(32 * 32) { red[3 * p] = 1 }
        #expect(try SaturationScorer().score(batch([red, white]), prompts: prompts(2)) == [1, 0])
        var rng = RNG(seed: 3)
        let spec = try PromptSpec(parsing: "a red circle on a blue background")
        let img = Renderer(size: 32).render(spec, rng: &rng)
        #expect(try ShapeEvalScorer().score(batch([img, white]), prompts: prompts(2, spec.text)) == [1, 0])
        // strict: a red circle and a blue square, asked for the red circle alone, loses the one
        // requirement of five that nothing else is there (when the checker separates the two)
        let one = try PromptSpec(parsing: "a red circle on a white background")
        let two = Renderer(size: 32).render(try PromptSpec(parsing: "a red circle and a green square on a white background"), rng: &rng)
        let alone = Renderer(size: 32).render(one, rng: &rng)
        let lenient = try ShapeEvalScorer().score(batch([two, alone]), prompts: prompts(2, one.text))
        let strict = try ShapeEvalScorer(.strict).score(batch([two, alone]), prompts: prompts(2, one.text))
        #expect(lenient == [1, 1] && strict[1] == 1)
        #expect(strict[0] == 2.0 / 3 || Checker(size: 32).check(two, spec: one).objects.count != 2)
    }

    /// The spec is parsed once into a value; every built-in name of the registry parses and makes
    /// its scorer; a bad spec is an error wherever it is read (a run's configuration, the report's
    /// optimised scorers), never an empty set that turns the optimised scorer into a gold metric.
    @Test func rewardSpecIsOneValueAndABadOneIsAnErrorEverywhere() throws {
        for entry in ScorerRegistry.builtIn {
            let spec = try RewardSpec(parsing: "\(entry.name)=2")
            #expect(spec.terms == [RewardSpec.Term(name: entry.name, weight: 2)])
            #expect(try spec.makeReward().names == [entry.name])
        }
        let ext = try RewardSpec(parsing: "brightness=0, external: cat =1.5")
        #expect(ext.terms.map(\.name) == ["brightness", "external:cat"] && ext.optimisedNames == ["external:cat"])
        #expect(throws: RewardError.self) { try RewardSpec(parsing: "sharpness=1,shape-eval=0") }
        var c = FinetuneConfig()
        c.reward = "brightness=1,shap-eval=0"
        #expect(throws: RewardError.self) { try c.validate() }
        #expect(ScorerRegistry.names.hasSuffix("jpeg-incompressibility, external:COMMAND, rm:PATH[+PATH...]"))
    }

    @Test func rewardSpecParsing() throws {
        let r = try CombinedReward(parsing: "shape-eval=1, jpeg-compressibility=0")
        #expect(r.names == ["shape-eval", "jpeg-compressibility"])
        #expect(r.terms.map(\.weight) == [1, 0])
        let (total, by) = try r.evaluate(batch([Self.flat]), prompts: prompts(1))
        #expect(total[0] == by["shape-eval"]![0])     // weight 0: logged, not in the total
        #expect(by["jpeg-compressibility"] != nil)
        #expect(try CombinedReward(parsing: "brightness").terms[0].weight == 1)
        func message(_ spec: String) -> String { do { _ = try CombinedReward(parsing: spec); return "" } catch { return "\(error)" } }
        #expect(message("sharpness=1").contains("unknown reward 'sharpness'"))
        #expect(message("brightness=abc").contains("not a finite number"))
        #expect(message("brightness=-0.5").contains("negative"))
        #expect(message("brightness=inf").contains("not a finite number"))
        #expect(message("").contains("empty"))
        #expect(message("brightness=0").contains("nothing to optimise"))
        #expect(message("brightness,brightness=2").contains("twice"))
        #expect(message("brightness,,saturation").contains("empty term"))
        #expect(message("external:").contains("needs a command"))
    }
}

@Suite struct ExternalScorerTests {
    static let image: [Float] = { var r = RNG(seed: 2); return (0..<(32 * 32 * 3)).map { _ in r.uniform(-1, 1) } }()

    func message(_ command: String, timeout: Double = 5) -> String {
        do { _ = try ExternalScorer(command: command, timeout: timeout).score(batch([Self.image]), prompts: prompts(1)); return "" }
        catch { return "\(error)" }
    }

    @Test func happyPathReadsTheImageAndAnswersPerLine() throws {
        // answers with the PNG file's size, so the reply depends on the file the request named
        let cmd = #"while read -r line; do f=$(printf '%s' "$line" | sed 's/.*"image": "\([^"]*\)".*/\1/'); stat -c %s "$f"; done"#
        let s = ExternalScorer(command: cmd, timeout: 10)
        let out = try s.score(batch([Self.image, Self.image]), prompts: prompts(1) + prompts(1, "two green squares on a black background"))
        let size = Float(try RGBImage(signedUnit: Self.image, width: 32, height: 32).pngData().count)
        #expect(out == [size, size])
        // the same process serves later batches
        #expect(try s.score(batch([Self.image]), prompts: prompts(1)) == [size])
    }

    @Test func crashIsAnError() {
        let m = message("read -r line; exit 3")
        #expect(m.contains("exited") && m.contains("external scorer"))
    }

    @Test func hangHitsTheTimeout() {
        let start = Date()
        let m = message("while read -r line; do sleep 30; done", timeout: 1)
        #expect(m.contains("no answer within"))
        #expect(Date().timeIntervalSince(start) < 10)
    }

    /// The processes whose command line contains `marker` (zombies included), from /proc.
    static func processes(containing marker: String) -> [String] {
        let ids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc"))?.filter { Int($0) != nil } ?? []
        return ids.compactMap { id in
            guard let data = FileManager.default.contents(atPath: "/proc/\(id)/cmdline"), !data.isEmpty else { return nil }
            let cmd = String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
            return cmd.contains(marker) ? "\(id): \(cmd)" : nil
        }
    }

    /// A scorer that starts a sleeping grandchild and then hangs: after the timeout error, no
    /// process of that scorer is left, grandchild included.
    @Test func aHangingScorerAndItsDescendantsAreStoppedAndReaped() {
        let marker = "\(4_000_000 + Int.random(in: 0..<999_999))"
        let m = message("sleep \(marker) & sh -c 'sleep \(marker)' & while read -r line; do sleep \(marker); done", timeout: 1)
        #expect(m.contains("no answer within"))
        #expect(Self.processes(containing: "sleep \(marker)").isEmpty, "left: \(Self.processes(containing: "sleep \(marker)"))")
        // and one that exits while a grandchild sleeps on
        let m2 = message("sleep \(marker) & read -r line; exit 3")
        #expect(m2.contains("exited (status 3)"))
        #expect(Self.processes(containing: "sleep \(marker)").isEmpty)
    }

    /// Replies are matched one to one with requests: an id echoed back is checked; answering
    /// twice for one image, or without reading, is an error instead of shifted rewards; CRLF
    /// line ends are accepted; a huge line is refused without quadratic scanning.
    @Test func repliesAreMatchedOneToOneWithRequests() throws {
        let two = [Self.image, Self.image]
        let prompts2 = prompts(1) + prompts(1)
        func message(_ command: String, timeout: Double = 5) -> String {
            do { _ = try ExternalScorer(command: command, timeout: timeout).score(batch(two), prompts: prompts2); return "" }
            catch { return "\(error)" }
        }
        // the id form: the reply echoes the request's id
        let echo = #"while read -r line; do id=$(printf '%s' "$line" | sed 's/^{"id": \([0-9]*\).*/\1/'); echo "{\"id\": $id, \"score\": $id.5}"; done"#
        #expect(try ExternalScorer(command: echo, timeout: 10).score(batch(two), prompts: prompts2) == [1.5, 2.5])
        #expect(message(#"while read -r line; do echo '{"id": 7, "score": 1}'; done"#).contains("the id must be the request's"))
        #expect(message(#"while read -r line; do echo '{"id": 1}'; done"#).contains("without a numeric \"score\""))
        // two lines for one image, and answers printed without reading
        // (each in one write, so that it is there by the next request however loaded the machine is)
        #expect(message(#"while read -r line; do printf '0.5\n0.7\n'; sleep 0.2; done"#).contains("answered more lines than it was asked"))
        #expect(message(#"printf '0.5\n%.0s' $(seq 100); sleep 5"#).contains("answered more lines than it was asked"))
        // with ids, a stale answer is told from the right one whenever it arrives
        let stale = message(#"read -r line; echo '{"id": 1, "score": 0.5}'; sleep 0.3; echo '{"id": 1, "score": 0.5}'; read -r line; sleep 5"#)
        #expect(stale.contains("the id must be the request's") || stale.contains("answered more lines"), "\(stale)")
        // CRLF
        #expect(try ExternalScorer(command: #"while read -r line; do printf '0.25\r\n'; done"#, timeout: 10).score(batch(two), prompts: prompts2) == [0.25, 0.25])
        // a 20 MB line: refused at the limit, in well under the time quadratic scanning took
        let start = Date()
        #expect(message("read -r line; head -c 20000000 /dev/zero | tr '\\0' 7; echo", timeout: 30).contains("a line longer than"))
        #expect(Date().timeIntervalSince(start) < 8)
    }

    /// A scorer's descendant that left its process group (setsid) is stopped with the scorer;
    /// image folders of flowtune processes that were killed are removed at the next start.
    @Test func escapedDescendantsAndStaleFoldersAreCleanedUp() throws {
        let marker = "\(5_000_000 + Int.random(in: 0..<999_999))"
        func scoreOnce() throws -> [Float] {     // the scorer is stopped when it goes out of scope
            let s = ExternalScorer(command: "setsid sleep \(marker) & while read -r line; do echo 0.5; done", timeout: 10)
            let scores = try s.score(batch([Self.image]), prompts: prompts(1))
            usleep(100_000)
            #expect(!Self.processes(containing: "sleep \(marker)").isEmpty)
            return scores
        }
        #expect(try scoreOnce() == [0.5])
        #expect(Self.processes(containing: "sleep \(marker)").isEmpty, "left: \(Self.processes(containing: "sleep \(marker)"))")
        let m = message("setsid sleep \(marker) & read -r line; exit 3")
        #expect(m.contains("exited (status 3)"))
        #expect(Self.processes(containing: "sleep \(marker)").isEmpty, "after an exit: \(Self.processes(containing: "sleep \(marker)"))")
        let stale = FileManager.default.temporaryDirectory.appendingPathComponent("flowtune-external-2147483646-12345")
        try FileManager.default.createDirectory(at: stale, withIntermediateDirectories: true)
        let live = FileManager.default.temporaryDirectory.appendingPathComponent("flowtune-external-\(getppid())-12345")
        try FileManager.default.createDirectory(at: live, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: live); try? FileManager.default.removeItem(at: stale) }
        _ = try ExternalScorer(command: "while read -r line; do echo 0.5; done", timeout: 10).score(batch([Self.image]), prompts: prompts(1))
        #expect(!FileManager.default.fileExists(atPath: stale.path))
        #expect(FileManager.default.fileExists(atPath: live.path))
    }

    @Test func garbageNaNAndShortRepliesAreErrors() {
        #expect(message("while read -r line; do echo hello; done").contains("not a JSON number"))
        #expect(message("while read -r line; do echo NaN; done").contains("not a finite number"))
        #expect(message("while read -r line; do echo 1e999; done").contains("not a finite number"))
        #expect(message("read -r line; printf '0.5'").contains("partial line"))
        #expect(message("/nonexistent/scorer-binary").contains("exited"))
    }
}

