import Testing
import Foundation
import Tensor
import Shapes

@Suite struct CaptionNoiseTests {
    func spec(_ text: String) throws -> PromptSpec { try PromptSpec(parsing: text) }

    @Test func eachKindOnKnownPrompts() throws {
        typealias N = CaptionNoise
        #expect(N.apply(.count, to: try spec("one red circle on a white background"))?.text == "two red circles on a white background")
        #expect(N.apply(.count, to: try spec("four red circles on a white background"))?.text == "three red circles on a white background")
        let three = try spec("three red circles on a white background")
        #expect(N.apply(.count, to: three, pick: 0)?.count == 2)
        #expect(N.apply(.count, to: three, pick: 1)?.count == 4)
        #expect(N.apply(.relation, to: try spec("a red triangle on the left of a blue circle on a white background"))?.text
                == "a red triangle on the right of a blue circle on a white background")
        #expect(N.apply(.relation, to: try spec("a red triangle above a blue circle on a white background"))?.text
                == "a red triangle below a blue circle on a white background")
        #expect(N.apply(.binding, to: try spec("a red square and a blue triangle on a white background"))?.text
                == "a blue square and a red triangle on a white background")
        #expect(N.apply(.binding, to: try spec("a red square below a blue triangle on a white background"))?.text
                == "a blue square below a red triangle on a white background")
        #expect(N.apply(.omission, to: try spec("a red square and a blue triangle on a white background"))?.text
                == "a red square on a white background")
        let placed = try spec("a small red square at the top left on a white background")
        let moved = try #require(N.apply(.placement, to: placed, pick: 0))
        #expect(moved.objects[0].placement != .topLeft && moved.objects[0].placement != .center && moved.objects[0].size == .small)
        #expect(N.apply(.placement, to: try spec("a red square at the center on a white background"), pick: 3)?.objects[0].placement != .center)
    }

    @Test func kindsApplyOnlyWhereTheyChangeThePrompt() throws {
        typealias N = CaptionNoise
        let single = try spec("a red circle on a blue background")
        for kind in N.Kind.allCases { #expect(N.apply(kind, to: single) == nil, "\(kind)") }   // nothing placed, nothing to bind
        #expect(N.apply(.binding, to: try spec("a red square and a red triangle on a white background")) == nil)   // equal colours
        #expect(N.apply(.binding, to: try spec("a red square and a blue square on a white background")) == nil)    // one shape
        #expect(N.apply(.binding, to: try spec("a red square above a blue square on a white background")) != nil)  // but placed: changes
        #expect(N.apply(.count, to: try spec("a red square and a blue triangle on a white background")) == nil)
        #expect(N.apply(.relation, to: try spec("two red squares on a white background")) == nil)
    }

    /// Rendered for the corrupted prompt, an image fails the checker against the caption and
    /// passes it against the prompt it was drawn for (up to the renderer-checker pair's own
    /// error, a few per cent: `check-data`).
    @Test(arguments: CaptionNoise.Kind.allCases)
    func checkerFailsTheCaptionAndPassesTheDrawnPrompt(kind: CaptionNoise.Kind) throws {
        let generator = PromptGenerator()
        let renderer = Renderer(size: 32), checker = Checker(size: 32)
        var rng = RNG(seed: 11)
        var tried = 0, failsCaption = 0, passesDrawn = 0
        while tried < 60 {
            let caption = generator.sample(rng: &rng)
            guard let drawn = CaptionNoise.apply(kind, to: caption, pick: rng.nextUInt64()) else { continue }
            tried += 1
            let image = renderer.render(drawn, rng: &rng)
            if !checker.check(image, spec: caption).allCorrect { failsCaption += 1 }
            if checker.check(image, spec: drawn).allCorrect { passesDrawn += 1 }
        }
        #expect(failsCaption >= 57, "\(kind): \(failsCaption) of 60 renderings fail their caption")
        #expect(passesDrawn >= 55, "\(kind): \(passesDrawn) of 60 renderings pass the prompt they were drawn for")
    }

    /// Over many draws each kind corrupts its share of the prompts it applies to, within
    /// binomial bounds (4.5 standard deviations), and at most one kind a prompt.
    @Test func ratesAreWithinBinomialBounds() throws {
        let noise = try CaptionNoise(parsing: "count=0.3,relation=0.5,binding=0.2,omission=0.1,placement=0.4")
        let generator = PromptGenerator()
        var rng = RNG(seed: 5)
        var applicable: [CaptionNoise.Kind: Int] = [:], hits: [CaptionNoise.Kind: Int] = [:]
        for _ in 0..<20_000 {
            let caption = generator.sample(rng: &rng)
            // the rate of a kind counts among the prompts still clean when it is tried
            let (drawn, kind) = noise.corrupt(caption, rng: &rng)
            var clean = true
            for k in CaptionNoise.Kind.allCases where clean && CaptionNoise.apply(k, to: caption) != nil {
                applicable[k, default: 0] += 1
                if k == kind { hits[k, default: 0] += 1; clean = false }
            }
            #expect((kind == nil) == (drawn == caption))
        }
        for (kind, p) in noise.rates {
            let n = Double(try #require(applicable[kind])), k = Double(hits[kind] ?? 0)
            #expect(n > 500, "\(kind) applies to \(n) prompts")
            #expect(abs(k / n - p) <= 4.5 * (p * (1 - p) / n).squareRoot(), "\(kind): \(k) of \(n), asked \(p)")
        }
    }

    @Test func noNoiseLeavesEveryPromptAndTheStream() throws {
        let none = try CaptionNoise(parsing: "")
        #expect(none.isEmpty && none.description == "")
        var a = RNG(seed: 3)
        let s = try spec("a red square and a blue triangle on a white background")
        #expect(none.corrupt(s, rng: &a).drawn == s)
    }

    @Test func specRoundTripsAndBadSpecsAreOneLineErrors() throws {
        let n = try CaptionNoise(parsing: " relation=0.3, count=0.25 ")
        #expect(n.description == "count=0.25,relation=0.3")
        #expect(try CaptionNoise(parsing: n.description) == n)
        let data = try JSONEncoder().encode(n)
        #expect(String(decoding: data, as: UTF8.self) == "\"count=0.25,relation=0.3\"")
        #expect(try JSONDecoder().decode(CaptionNoise.self, from: data) == n)
        let bad: [(String, String)] = [
            ("colour=0.1", "unknown kind \"colour\""), ("count=1.5", "must be in [0, 1]"), ("count=-0.1", "must be in [0, 1]"),
            ("count=nan", "must be in [0, 1]"), ("count", "not KIND=PROBABILITY"), ("count=0.1,count=0.2", "appears twice"),
            ("count=x", "is not a number"), ("count=0.1,", "not KIND=PROBABILITY"),
        ]
        for (text, message) in bad {
            do {
                _ = try CaptionNoise(parsing: text)
                Issue.record("\(text): expected an error")
            } catch let e as PromptError {
                #expect(e.description.contains(message), "\(text): \(e.description)")
                #expect(!e.description.contains("\n"))
            }
        }
    }
}
