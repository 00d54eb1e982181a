import Testing
import Foundation
import Tensor
import Shapes

@Suite struct GrammarTests {
    @Test(arguments: [
        "a red circle on a blue background",
        "a large purple square at the center on a gray background",
        "a small yellow triangle at the top left on an orange background",
        "a blue circle and an orange square on a black background",
        "one cyan triangle on a white background",
        "four green squares on a pink background",
        "a red triangle on the left of a blue circle on a white background",
        "a gray square below a yellow circle on a red background",
    ])
    func canonicalTextRoundTrips(_ prompt: String) throws {
        let spec = try PromptSpec(parsing: prompt)
        #expect(spec.text == prompt)
        #expect(try Tokenizer.encode(prompt).count == Tokenizer.maxTokens)
    }

    @Test func tasksAreRecognised() throws {
        #expect(try PromptSpec(parsing: "a red circle on a blue background").task == .single)
        #expect(try PromptSpec(parsing: "a red circle and a blue square on a white background").task == .twoObjects)
        let c = try PromptSpec(parsing: "three green circles on a gray background")
        #expect(c.task == .counting && c.count == 3)
        let p = try PromptSpec(parsing: "a red triangle above a blue circle on a white background")
        #expect(p.task == .position && p.relation == .above)
    }

    @Test func unknownWordNamesItAndTheVocabulary() {
        do {
            _ = try Tokenizer.encode("a plaid circle on a blue background")
            Issue.record("expected an error")
        } catch let e as PromptError {
            #expect(e.description.contains("\"plaid\""))
            #expect(e.description.contains("circle") && e.description.contains("background"))
        } catch { Issue.record("wrong error \(error)") }
    }

    @Test func tooManyTokensIsAnError() {
        let long = Array(repeating: "a", count: 17).joined(separator: " ")
        #expect(throws: PromptError.self) { try Tokenizer.encode(long) }
    }

    @Test func ungrammaticalPromptsAreErrors() {
        for bad in ["red a circle on a blue background", "a red circle", "two red circle on a blue background",
                    "a red circle on a blue", "", "a red circles on a blue background"] {
            #expect(throws: PromptError.self, "\(bad)") { try PromptSpec(parsing: bad) }
        }
    }

    @Test func tokenIdsArePaddedAndNullIsDistinct() throws {
        let t = try Tokenizer.encode("a red circle on a blue background")
        #expect(t.prefix(7).allSatisfy { $0 > 1 } && t.dropFirst(7).allSatisfy { $0 == Tokenizer.pad })
        #expect(Tokenizer.nullTokens[0] == Tokenizer.null)
    }

    @Test func promptFileErrors() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ft-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        func message(_ path: String) -> String {
            do { _ = try PromptFile(path: path); return "" } catch { return "\(error)" }
        }
        #expect(message(dir.appendingPathComponent("missing.txt").path).contains("no such prompt file"))
        let empty = dir.appendingPathComponent("empty.txt")
        try "# only a comment\n\n".write(to: empty, atomically: true, encoding: .utf8)
        #expect(message(empty.path).contains("no prompts"))
        let bad = dir.appendingPathComponent("bad.txt")
        try "a red circle on a blue background\na plaid circle on a blue background\n".write(to: bad, atomically: true, encoding: .utf8)
        #expect(message(bad.path).contains("line 2") && message(bad.path).contains("\"plaid\""))
        #expect(message(dir.path).contains("folder"))
        let good = dir.appendingPathComponent("good.txt")
        try "# comment\na red circle on a blue background\n\nthree green circles on a gray background\n".write(to: good, atomically: true, encoding: .utf8)
        #expect(try PromptFile(path: good.path).prompts.count == 2)
    }

    /// Windows line ends and a byte-order mark read as the same prompts; line numbers still count.
    @Test func promptFilesWithCRLFAndBOMReadLikeLF() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ft-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let lines = ["a red circle on a blue background", "", "three green circles on a gray background"]
        var files: [String: Data] = [:]
        files["lf"] = Data((lines.joined(separator: "\n") + "\n").utf8)
        files["crlf"] = Data((lines.joined(separator: "\r\n") + "\r\n").utf8)
        files["bom"] = Data([0xEF, 0xBB, 0xBF]) + files["crlf"]!
        for (name, data) in files {
            let url = dir.appendingPathComponent(name + ".txt")
            try data.write(to: url)
            #expect(try PromptFile(path: url.path).prompts == [lines[0], lines[2]], "\(name)")
        }
        let bad = dir.appendingPathComponent("bad.txt")
        try Data("a red circle on a blue background\r\n\r\na plaid circle on a blue background\r\n".utf8).write(to: bad)
        #expect(throws: PromptError.self) { try PromptFile(path: bad.path) }
        do { _ = try PromptFile(path: bad.path) } catch { #expect("\(error)".contains("bad.txt line 3: unknown word \"plaid\"")) }
    }

    /// Quoted input in a message is one line: control characters escaped, long text cut.
    @Test func quotedTextIsOneShortLine() {
        #expect(PromptError.quoted("a\u{0}b\r\n") == "\"a\\0b\\r\\n\"")
        let long = PromptError.quoted(String(repeating: "x", count: 1000))
        #expect(long.count < 120 && long.contains("(1000 characters)"))
    }

    @Test func shippedPromptListsCoverEveryTaskAndAreDisjoint() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let train = try PromptFile(path: root.appendingPathComponent("prompts/train.txt").path)
        let eval = try PromptFile(path: root.appendingPathComponent("prompts/eval.txt").path)
        #expect(train.prompts.count >= 300 && eval.prompts.count >= 48)
        #expect(Set(train.specs.map(\.task)) == Set(Task.allCases) && Set(eval.specs.map(\.task)) == Set(Task.allCases))
        #expect(Set(train.prompts).isDisjoint(with: eval.prompts))
    }
}

@Suite struct CheckerTests {
    /// The checker reads rendered data back: >= 0.97 mean score for every task type, on at
    /// least 200 images per task.
    @Test(arguments: Task.allCases) func checkerAgreesWithTheRenderer(_ task: Task) {
        let gen = PromptGenerator(), renderer = Renderer(size: 32), checker = Checker(size: 32)
        var rng = RNG(seed: 77).split(UInt64(Task.allCases.firstIndex(of: task)!))   // the same stream in every process
        var total: Float = 0
        let n = 240
        var failures: [String] = []
        for _ in 0..<n {
            let spec = gen.draw(task: task, rng: &rng)
            let img = renderer.render(spec, rng: &rng)
            let r = checker.check(img, spec: spec)
            total += r.score
            if r.score < 1, failures.count < 3 { failures.append("\(spec.text): \(r.requirements.filter { !$0.passed }.map(\.name)) saw \(r.objects)") }
        }
        #expect(total / Float(n) >= 0.97, "\(task): \(total / Float(n)); e.g. \(failures)")
    }

    @Test func checkerFailsWrongImages() {
        let renderer = Renderer(size: 32), checker = Checker(size: 32)
        var rng = RNG(seed: 5)
        let blueSquare = renderer.render(try! PromptSpec(parsing: "a large blue square at the top left on a white background"), rng: &rng)
        let asked = try! PromptSpec(parsing: "a small red circle at the bottom right on a black background")
        let r = checker.check(blueSquare, spec: asked)
        #expect(r.score == 0)
        // colour right, shape wrong
        let r2 = checker.check(blueSquare, spec: try! PromptSpec(parsing: "a large blue circle at the top left on a white background"))
        #expect(r2.requirements.first { $0.name.contains("present") }?.passed == false)
        #expect(r2.requirements.first { $0.name.contains("background") }?.passed == true)
        // wrong count
        let three = renderer.render(try! PromptSpec(parsing: "three red squares on a gray background"), rng: &rng)
        let r3 = checker.check(three, spec: try! PromptSpec(parsing: "two red squares on a gray background"))
        #expect(r3.requirements.first { $0.name == "exactly 2" }?.passed == false)
        // flat image: nothing found
        let flat = [Float](repeating: 0, count: 32 * 32 * 3)
        #expect(checker.check(flat, spec: asked).objects.isEmpty)
        // swapped relation
        let left = renderer.render(try! PromptSpec(parsing: "a red circle on the left of a blue square on a white background"), rng: &rng)
        let r4 = checker.check(left, spec: try! PromptSpec(parsing: "a red circle on the right of a blue square on a white background"))
        #expect(r4.requirements.first { $0.name == "on the right of" }?.passed == false)
    }

    /// The strict checker adds one requirement, that nothing but the asked objects is there: the
    /// renderer's images of their own prompts meet it; an image with an object more than the
    /// prompt asks for fails it (and only it), where the lenient checker gives full marks.
    @Test func strictCheckerFailsExtraObjectsOnly() throws {
        let renderer = Renderer(size: 32), lenient = Checker(size: 32), strict = Checker(size: 32, strict: true)
        let gen = PromptGenerator()
        var rng = RNG(seed: 12)
        var met = 0, n = 0
        for task in Task.allCases {
            for _ in 0..<60 {
                let spec = gen.draw(task: task, rng: &rng)
                let r = strict.check(renderer.render(spec, rng: &rng), spec: spec)
                #expect(r.requirements.last?.name == Requirement.nothingElse && r.requirements.last?.kind == "extra")
                met += r.requirements.last!.passed ? 1 : 0; n += 1
            }
        }
        #expect(Double(met) / Double(n) >= 0.97, "\(met) of \(n) renderings have nothing extra")
        var found = false
        for _ in 0..<20 where !found {   // a draw whose two objects the checker separates
            let two = renderer.render(try PromptSpec(parsing: "a red circle and a blue square on a white background"), rng: &rng)
            for asked in ["a red circle on a white background", "three blue squares on a white background"] {
                let spec = try PromptSpec(parsing: asked)
                let l = lenient.check(two, spec: spec), s = strict.check(two, spec: spec)
                guard l.objects.count == 2 else { continue }
                found = true
                #expect(s.requirements.count == l.requirements.count + 1)
                #expect(s.requirements.last?.name == Requirement.nothingElse && s.requirements.last?.passed == false)
                #expect(Array(s.requirements.dropLast()) == l.requirements)          // the rest are the lenient checker's
                #expect(abs(s.margins.last! - 0.5) < 1e-6)                          // one extra object
                if asked.hasPrefix("a red") { #expect(l.score == 1 && s.score < 1) }
            }
        }
        #expect(found)
    }

    /// The margin scores agree with pass or fail on every requirement (a met one scores above
    /// 0.5, exactly 1 where it is not a distance; an unmet one below, or a partial credit), on
    /// the renderer's images checked against their own prompts and against other prompts.
    @Test(arguments: Task.allCases) func marginScoresAgreeWithPassOrFail(_ task: Task) {
        let gen = PromptGenerator(), renderer = Renderer(size: 32), checker = Checker(size: 32)
        var rng = RNG(seed: 78).split(UInt64(Task.allCases.firstIndex(of: task)!))
        var own: Float = 0, failed = 0
        for i in 0..<160 {
            let spec = gen.draw(task: task, rng: &rng)
            let img = renderer.render(spec, rng: &rng)
            let asked = i % 2 == 0 ? spec : gen.draw(task: task, rng: &rng)     // half against another prompt
            let r = checker.check(img, spec: asked)
            #expect(r.margins.count == r.requirements.count && r.margins.allSatisfy { $0 >= 0 && $0 <= 1 })
            if i % 2 == 0 { own += r.softScore }
            for (q, m) in zip(r.requirements, r.margins) {
                switch q.kind {
                case "object", "count", "background":
                    #expect((m == 1) == q.passed, "\(asked.text): \(q.name) \(q.passed) scored \(m)")
                default:
                    #expect(q.passed ? m > 0.5 : m <= 0.5, "\(asked.text): \(q.name) \(q.passed) scored \(m)")
                }
                if !q.passed { failed += 1 }
            }
        }
        #expect(failed > 20)                                  // the other prompts did fail requirements
        #expect(own / 80 > 0.85, "\(task): mean margin score \(own / 80) on its own prompts")
    }

    @Test func marginScoresGivePartialCredit() {
        let renderer = Renderer(size: 32), checker = Checker(size: 32)
        var rng = RNG(seed: 6)
        let blueSquare = renderer.render(try! PromptSpec(parsing: "a large blue square at the top left on a white background"), rng: &rng)
        func margin(_ r: CheckResult, _ name: String) -> Float? { zip(r.requirements, r.margins).first { $0.0.name == name }?.1 }
        // colour right, shape wrong: half; shape right, colour wrong: a quarter; neither: 0
        #expect(margin(checker.check(blueSquare, spec: try! PromptSpec(parsing: "a blue circle on a white background")), "blue circle present") == 0.5)
        #expect(margin(checker.check(blueSquare, spec: try! PromptSpec(parsing: "a red square on a white background")), "red square present") == 0.25)
        #expect(margin(checker.check(blueSquare, spec: try! PromptSpec(parsing: "a red circle on a white background")), "red circle present") == 0)
        // placement: well inside the asked corner scores high, the opposite corner low
        let tl = checker.check(blueSquare, spec: try! PromptSpec(parsing: "a large blue square at the top left on a white background"))
        let br = checker.check(blueSquare, spec: try! PromptSpec(parsing: "a large blue square at the bottom right on a white background"))
        #expect(margin(tl, "at the top left")! > 0.8 && margin(br, "at the bottom right")! < 0.2)
        #expect(tl.softScore > br.softScore && tl.score > br.score)
        // one object too many of three: 1 - 1/2 for "two"
        let three = renderer.render(try! PromptSpec(parsing: "three red squares on a gray background"), rng: &rng)
        #expect(margin(checker.check(three, spec: try! PromptSpec(parsing: "two red squares on a gray background")), "exactly 2") == 0.5)
        // a swapped relation scores below one half, the asked one above
        let left = renderer.render(try! PromptSpec(parsing: "a red circle on the left of a blue square on a white background"), rng: &rng)
        let asked = checker.check(left, spec: try! PromptSpec(parsing: "a red circle on the left of a blue square on a white background"))
        let swapped = checker.check(left, spec: try! PromptSpec(parsing: "a red circle on the right of a blue square on a white background"))
        #expect(margin(asked, "on the left of")! > 0.9 && margin(swapped, "on the right of")! < 0.1)
    }

    @Test func rendererIsDeterministicAndJittered() throws {
        let spec = try PromptSpec(parsing: "a red circle on a blue background")
        let r = Renderer(size: 32)
        var a = RNG(seed: 1), b = RNG(seed: 1), c = RNG(seed: 2)
        let x = r.render(spec, rng: &a)
        #expect(x == r.render(spec, rng: &b))
        #expect(x != r.render(spec, rng: &c))
        #expect(x.allSatisfy { $0 >= -1 && $0 <= 1 })
        // anti-aliased: some pixels lie strictly between background and object colours
        let distinct = Set(x.map { Int(($0 * 1000).rounded()) })
        #expect(distinct.count > 10)
    }
}
