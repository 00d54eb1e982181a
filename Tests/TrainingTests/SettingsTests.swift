import Testing
import TestSupport
import Foundation
import Analysis
import Tensor
import Flow
import Training

/// The settings tables: one declaration per setting gives the command line, the checks, the
/// JSON of config.json (and of a pretraining state), the sweep's axes and the resume rule.
@Suite struct SettingsTests {
    let table = FinetuneConfig.table

    func parse(_ words: [String]) throws -> FinetuneConfig { try table.parse(words, into: FinetuneConfig()).0 }
    func message(_ words: [String]) -> String {
        do { _ = try parse(words); return "" } catch { return "\(error)" }
    }

    /// Every setting's default, written as the help shows it and read back, is the default; a
    /// configuration of non-default values survives JSON; config.json's keys are the settings'
    /// names, each the option without its "--".
    @Test func defaultsAndJSONRoundTrip() throws {
        let defaults = FinetuneConfig()
        // (an optional whose default is nil shows what nil means, not a value: the three whose
        // default is a value are read back too)
        let nonNilOptionals = ["acflow-warmup-ev", "acflow-fresh-t-min", "acflow-ratio-clip"]
        for s in table.stored where s.commandLine && (!s.isOptional || nonNilOptionals.contains(s.name)) {
            var c = defaults
            let text = s.text(of: defaults)
            try s.set(&c, text)
            #expect(c == defaults, "\(s.name) '\(text)'")
        }
        var c = defaults
        c.algo = .acflow; c.lr = 3e-4; c.sde.window = 3; c.sde.noiseLevel = 0.5; c.sharedInitialNoise = true
        c.evalPromptCount = 64; c.clipRange = 2e-4; c.rmCombine = "mean-std:1"; c.precision = .bf16; c.modelChecksum = "abcd1234"
        c.acflow.ratioClip = nil; c.acflow.warmupExplainedVariance = nil; c.acflow.useCritic = false; c.acflow.target = .nft
        let data = try JSONEncoder().encode(c)
        #expect(try JSONDecoder().decode(FinetuneConfig.self, from: data) == c)
        let keys = Set((try JSONSerialization.jsonObject(with: data) as! [String: Any]).keys)
        #expect(keys == Set(table.stored.map(\.name)))
        #expect(keys.contains("eval-prompt-count") && keys.contains("acflow-no-critic") && keys.contains("noise-level"))
        #expect(table.differences(c, defaults).contains("acflow-no-critic") && table.differences(c, c).isEmpty)
    }

    /// A key that is absent reads as its default; a key no setting has is an error naming it
    /// (a misspelt setting in a hand-written --config file does not pass as the default).
    @Test func absentKeysAreDefaultsUnknownKeysAreErrors() throws {
        let partial = try JSONDecoder().decode(FinetuneConfig.self, from: Data(#"{"lr": 0.0003, "acflow-target": "nft"}"#.utf8))
        var want = FinetuneConfig()
        want.lr = 3e-4; want.acflow.target = .nft
        #expect(partial == want)
        do {
            _ = try JSONDecoder().decode(FinetuneConfig.self, from: Data(#"{"lr": 0.0003, "leraning-rate": 1}"#.utf8))
            Issue.record("an unknown key was accepted")
        } catch {
            #expect("\(error)".contains("unknown setting 'leraning-rate'"))
        }
    }

    /// A config.json written before the settings were named (camelCase fields, the SDE and
    /// AC-Flow options nested, an optional left out meaning nil) reads with its values.
    @Test func olderConfigFilesRead() throws {
        let old = """
        {"acflow": {"actorSteps": 8, "advantageClip": 1, "alpha": 0.002, "criticLR": 0.001, "criticPositions": true, "criticSteps": 4,
          "criticWidth": 64, "freshTMin": 0.5, "kappa": 1, "lambda": 1, "nftBeta": 1, "normaliseWeights": true, "sdeRollouts": true,
          "shaping": true, "statsEMA": 0, "target": "visited", "tau": 2, "useCritic": false, "warmupIterations": 3, "weighting": "exp",
          "zeroAdvantages": false},
         "advantageClip": 5, "algo": "grpo", "beta": 0.004, "checkpointEvery": 40, "evalEvery": 40, "evalPerPrompt": 4,
         "evalPrompts": "prompts/eval.txt", "evalPrompts_limit": 64, "evalSteps": 20, "externalTimeout": 30, "globalStd": false,
         "gradClip": 1, "groupSize": 16, "innerEpochs": 1, "lr": 0.0001, "microBatches": 2, "model": "m.safetensors",
         "modelChecksum": "4aa53185", "prompts": "prompts/train.txt", "promptsPerIteration": 8, "reward": "shape-eval",
         "sde": {"noiseLevel": 0.5, "shift": 1, "steps": 10, "stochasticLastStep": true, "window": 3}, "seed": 1, "steps": 240,
         "weightDecay": 0.0001, "sharedInitialNoise": true, "precision": "bf16", "rmCombine": "min"}
        """
        let c = try JSONDecoder().decode(FinetuneConfig.self, from: Data(old.utf8))
        #expect(c.algo == .grpo && c.beta == 0.004 && c.evalPromptCount == 64 && c.promptsPerIteration == 8 && c.steps == 240)
        #expect(c.sde == SDEConfig(steps: 10, noiseLevel: 0.5, shift: 1, stochasticLastStep: true, window: 3))
        #expect(c.sharedInitialNoise && c.precision == .bf16 && c.rmCombine == "min" && c.modelChecksum == "4aa53185")
        #expect(c.acflow.target == .visited && c.acflow.tau == 2 && !c.acflow.useCritic && c.acflow.freshTMin == 0.5)
        // left out: nil then (the ratio clip and the warm-up's explained variance were optional)
        #expect(c.acflow.ratioClip == nil && c.acflow.warmupExplainedVariance == nil && c.clipRange == nil)
    }

    /// The command line: "--name value", "--name=value", flags (inverted ones too), a preset
    /// whose fields later options change, optionals' words for "none", and the errors.
    @Test func commandLine() throws {
        let c = try parse(["--lr", "3e-4", "--group-size=4", "--global-std", "--acflow-no-critic", "--acflow-warmup-ev", "-1",
                           "--acflow-ratio-clip", "0", "--sde-window", "3", "--algo", "acflow"])
        #expect(c.lr == 3e-4 && c.groupSize == 4 && c.globalStd && !c.acflow.useCritic && c.algo == .acflow)
        #expect(c.acflow.warmupExplainedVariance == nil && c.acflow.ratioClip == nil && c.sde.window == 3)
        // the preset reads --steps wherever it is, and --acflow-alpha overrides what it set
        let v1 = try parse(["--acflow-v1", "--steps", "50", "--acflow-alpha", "0.5"])
        #expect(v1.acflow.target == .fresh && v1.acflow.warmupIterations == 5 && v1.acflow.alpha == 0.5 && v1.steps == 50)
        // the options an algorithm does not read, as `finetune` names them
        #expect(FinetuneConfig.unread(["lr", "acflow-step-weights", "acflow-v1", "beta"], by: .grpoGuard) == ["--acflow-step-weights", "--acflow-v1"])
        #expect(FinetuneConfig.unread(["lr", "acflow-kappa", "beta", "clip-range", "global-std"], by: .acflow) == ["--beta", "--clip-range", "--global-std"])
        #expect(FinetuneConfig.unread(["lr", "seed", "steps"], by: .grpo).isEmpty)
        #expect(message(["--lrr", "1"]).contains("unknown option '--lrr' (did you mean --lr?)"))
        #expect(message(["--lr", "fast"]).contains("--lr 'fast': expected a number"))
        #expect(message(["--algo", "ppo"]).contains("expected one of grpo, grpo-guard, acflow"))
        #expect(message(["--lr"]).contains("--lr needs a value"))
        #expect(try parse(["--lr", "1", "--lr=2"]).lr == 2)                                 // the later one counts
        #expect(message(["--global-std=maybe"]).contains("--global-std 'maybe': expected true or false"))
        #expect(message(["--acflow-v1=true"]).contains("--acflow-v1 takes no value"))
        #expect(message(["--eval-early="]).contains("--eval-early= needs true or false"))
        // a flag given again as false turns it off (a script's default, the user's override); inverted ones too
        let off = try parse(["--global-std", "--acflow-no-shaping", "--global-std=false", "--acflow-no-shaping=false", "--eval-early=true"])
        #expect(!off.globalStd && off.acflow.shaping && off.evalEarly)
        #expect(message(["stray"]).contains("unexpected argument 'stray'"))
        #expect(message(["--model-checksum", "1"]).contains("unknown option"))          // recorded, never given
        #expect(message(["--precision", "bf16"]).contains("unknown option"))            // --threads' companion owns it
        #expect(message(["--acflow-target", "nft", "--acflow-ratio-clip", "1e-3"]).contains("needs --acflow-target transition"))
        // ranges are the configuration's check, which names the option
        var bad = try parse(["--lr", "-1"])
        #expect(throws: InvalidOption.self) { try bad.validate() }
        bad = try parse(["--eval-prompt-count", "0"])
        do { try bad.validate(); Issue.record("accepted") } catch { #expect("\(error)".contains("--eval-prompt-count must be positive, got 0")) }
    }

    /// The sweep's axes and the resume rule come from the table.
    @Test func sweepAxesAndResumeRule() throws {
        let names = SweepAxis.names
        for n in ["algo", "lr", "beta", "noise-level", "sde-window", "acflow-target", "acflow-no-critic", "precision", "rm-combine", "rm", "eval-prompt-count"] {
            #expect(names.contains(n), "\(n)")
        }
        for n in ["seed", "steps", "model-checksum", "acflow-v1"] { #expect(!names.contains(n), "\(n)") }
        #expect(table.changeableOnResume.map(\.name) == ["steps"])
        #expect(PretrainConfig.table.changeableOnResume.map(\.name) == ["steps"])
        // a flag as an axis: true and false
        let points = try sweepGrid(base: FinetuneConfig(), vary: [(try SweepAxis("acflow-no-critic"), ["false", "true"])], seeds: 1)
        #expect(points.map(\.config.acflow.useCritic) == [true, false])
    }

    /// The pretraining table: the folder's options, the colour, the caption noise's own error,
    /// a state's options written before they were named.
    @Test func pretrainingSettings() throws {
        let t = PretrainConfig.table
        let c = try t.parse(["--config", "s32c", "--data", "imgs", "--held-out", "0.2", "--flip", "--background", "240,240,240",
                             "--caption-noise", ""], into: PretrainConfig()).0
        #expect(c.model == "s32c" && c.folder?.heldOutFraction == 0.2 && c.folder?.flip == true && c.folder?.background == [240, 240, 240])
        do { _ = try t.parse(["--caption-noise", "cont=0.3"], into: PretrainConfig()); Issue.record("accepted") } catch {
            #expect("\(error)".contains("unknown kind \"cont\""))
        }
        do { _ = try t.parse(["--background", "teal"], into: PretrainConfig()); Issue.record("accepted") } catch {
            #expect("\(error)".contains("expected white, black, gray, or R,G,B"))
        }
        var flipOnly = PretrainConfig()
        flipOnly.flip = true
        #expect(throws: InvalidOption.self) { try flipOnly.validate() }
        let old = #"{"model": "s32c", "steps": 6000, "batch": 64, "lr": 0.0002, "minLR": 1e-05, "warmup": 200, "decayFraction": 0.5, "weightDecay": 0.01, "gradClip": 1, "emaDecay": 0.999, "nullProbability": 0.1, "tMean": 0, "tStd": 1, "seed": 0, "captionNoise": "count=0.4", "data": {"folder": "x", "heldOutFraction": 0.3, "splitSeed": 2, "flip": true, "background": [1, 2, 3], "skipBad": false, "minWordCount": 2, "maxWords": 13}}"#
        let p = try JSONDecoder().decode(PretrainConfig.self, from: Data(old.utf8))
        #expect(p.model == "s32c" && p.minLR == 1e-5 && p.decayFraction == 0.5 && p.captionNoise.description == "count=0.4")
        #expect(p.data == "x" && p.heldOut == 0.3 && p.splitSeed == 2 && p.flip && p.background.channels == [1, 2, 3] && p.minWordCount == 2 && p.maxWords == 13)
        #expect(p.distillFrom == nil && p.distillCFG == nil)
        #expect(try JSONDecoder().decode(PretrainConfig.self, from: try JSONEncoder().encode(p)) == p)
    }
}
