import ArgumentParser
import Foundation
import Analysis
import Tensor
import Imaging
import Model
import Training
import Rewards
import CProcess

struct SweepCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Run a grid of fine-tuning runs (algorithms, learning rates, KL weights, ... x seeds) and write sweep.jsonl, sweep.md and frontier.png.",
        discussion: FinetuneOptions.help("""
        Every point of the grid is an ordinary run folder under --out (config.json, metrics.jsonl, \
        grids, report.html), run by a `flowtune finetune` process of its own, --jobs at a time, the \
        threads split between them. Run the same command again to go on after an interruption: \
        finished runs are skipped, interrupted ones resumed from their last checkpoint.
        Example: flowtune sweep --reward brightness=1,shape-eval=0 --steps 20 --vary algo=grpo,grpo-guard \
        --vary lr=1e-4,3e-4 --seeds 2 --jobs 2 --out outputs/sweep
        """))
    @OptionGroup var options: FinetuneOptions
    @Option(name: .customLong("vary"), help: ArgumentHelp("AXIS=V1,V2,...: a setting to vary (repeatable).",
            discussion: "Axes: \(SweepAxis.names.joined(separator: ", ")).")) var vary: [String] = []
    @Option(help: "Seeds per grid point (--seed, --seed + 1, ...).") var seeds = 1
    @Option(help: "Runs at a time (each gets threads / jobs threads).") var jobs = 1
    @Option(help: "Proxy gains at which sweep.md compares the gold metrics (comma-separated).") var proxyGains = "0.05,0.1,0.2,0.3"
    @Option(help: "Sweep folder (one run folder per point inside).") var out = "outputs/sweep"
    @Flag(inversion: .prefixedNo, help: "Write TensorBoard event files into each run folder.") var tensorboard = true
    @OptionGroup var threads: ThreadOptions

    func run() throws {
        enableGracefulInterrupt()
        let (axes, points) = try grid()
        let perJob = max(1, try threads.compute().workers / jobs)
        let dir = try outputURL(out)
        try makeFolder(dir)
        log("sweep: \(points.count) runs (\(axes.map { "\($0.0.name) x \($0.1.count)" }.joined(separator: ", "))\(axes.isEmpty ? "" : ", ")\(seeds) seed(s)), \(min(jobs, points.count)) at a time with \(perJob) thread(s) each; writing \(dir.path)")
        let (queue, skipped) = try plan(points, in: dir, threadsPerRun: perJob)
        try writeAtomically(JSONValue.array(points.map { p in .object(p.settings.map { ($0.0, .string($0.1)) } + [("run", .string(p.name))]) }).text + "\n",
                            to: dir.appendingPathComponent("sweep-grid.json"))
        if skipped > 0 { log("sweep: \(skipped) run(s) already finished, skipped") }
        let failed = try runAll(queue, of: points, skipped: skipped, in: dir)
        try writeTables(points: points, dir: dir)
        log("sweep: wrote \(dir.appendingPathComponent("sweep.md").path), sweep.jsonl"
            + (FileManager.default.fileExists(atPath: dir.appendingPathComponent("frontier.png").path) ? " and frontier.png" : ""))
        if !failed.isEmpty {
            throw CLIError("sweep: \(failed.count) of \(points.count) runs failed (their logs: RUN/finetune.log): " + failed.map { "\($0.0.name) (\($0.1))" }.joined(separator: "; "))
        }
    }

    /// The --vary axes and every run of the grid, checked (a value an option would refuse, or a
    /// precision this CPU cannot run, is an error before any run starts).
    func grid() throws -> (axes: [(SweepAxis, [String])], points: [SweepPoint]) {
        let axes = try vary.map { spec -> (SweepAxis, [String]) in
            let parts = spec.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else {
                throw CLIError("--vary '\(spec)': expected AXIS=V1,V2,... with AXIS one of \(SweepAxis.names.joined(separator: ", "))")
            }
            let axis: SweepAxis
            do { axis = try SweepAxis(parts[0]) } catch { throw CLIError("\(error)") }
            return (axis, parts[1].split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) })
        }
        try OptionCheck.positive("--jobs", jobs)
        _ = try gains()
        var base = try options.config
        base.precision = threads.chosenPrecision
        let points: [SweepPoint]
        do { points = try sweepGrid(base: base, vary: axes, seeds: seeds) } catch let e as InvalidOption { throw CLIError(e.description) }
        let cpu = try threads.compute()
        for p in points {
            do { _ = try cpu.with(p.config.precision) } catch { throw CLIError("run \(p.name): \(error)") }
        }
        return (axes, points)
    }

    /// What each run needs: nothing (finished: counted as skipped), a resume, or a start (its
    /// configuration written under .configs/); the finetune arguments of those to run.
    func plan(_ points: [SweepPoint], in dir: URL, threadsPerRun: Int) throws -> (queue: [(SweepPoint, [String])], skipped: Int) {
        var queue: [(SweepPoint, [String])] = []
        var skipped = 0
        for p in points {
            let runDir = dir.appendingPathComponent(p.name)
            let metrics = runDir.appendingPathComponent("metrics.jsonl")
            try checkReusable(runDir, as: p)
            if let m = try? RunMetrics(url: metrics), let last = m.lines.last?.step, last >= p.config.steps {
                skipped += 1
                continue
            }
            var args = ["finetune", "--threads", String(threadsPerRun)] + (tensorboard ? [] : ["--no-tensorboard"])
            if FileManager.default.fileExists(atPath: runDir.appendingPathComponent("config.json").path),
               FileManager.default.fileExists(atPath: metrics.path) {
                args += ["--resume", runDir.path, "--steps", String(p.config.steps)]
            } else {
                let enc = JSONEncoder()
                enc.outputFormatting = [.prettyPrinted, .sortedKeys]
                let configURL = dir.appendingPathComponent(".configs/\(p.name).json")
                try writeAtomically(try enc.encode(p.config), to: configURL)
                args += ["--config", configURL.path, "--out", runDir.path]
            }
            queue.append((p, args))
        }
        return (queue, skipped)
    }

    /// The queued runs, --jobs at a time, each in its own process group with its output in
    /// RUN/finetune.log; returns the failed ones with their exit and last log line. A signal
    /// stops every run at its next checkpoint, writes the tables and throws.
    func runAll(_ queued: [(SweepPoint, [String])], of points: [SweepPoint], skipped: Int, in dir: URL) throws -> [(SweepPoint, String)] {
        var queue = queued
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        var running: [(pid: pid_t, point: SweepPoint, started: Date)] = []
        var failed: [(SweepPoint, String)] = []
        var done = 0, durations: [Double] = []
        let start = Date()
        func progress() {
            let left = queue.count + running.count
            let mean = durations.isEmpty ? nil : durations.reduce(0, +) / Double(durations.count)
            let eta = mean.map { formatDuration($0 * Double(left) / Double(max(1, min(jobs, left)))) } ?? "?"
            log("sweep: \(done + skipped)/\(points.count) runs done, \(running.count) running, \(failed.count) failed, \(formatDuration(Date().timeIntervalSince(start))) so far, ETA \(eta)")
        }
        while !queue.isEmpty || !running.isEmpty {
            if interruptSignal == nil {
                while running.count < jobs, !queue.isEmpty {
                    let (p, args) = queue.removeFirst()
                    let runDir = dir.appendingPathComponent(p.name)
                    try makeFolder(runDir)
                    let command = "exec " + ([exe] + args).map(shellQuote).joined(separator: " ") + " >> " + shellQuote(runDir.appendingPathComponent("finetune.log").path) + " 2>&1"
                    var toChild: Int32 = -1, fromChild: Int32 = -1
                    let pid = ft_spawn_group(command, &toChild, &fromChild)
                    guard pid > 0 else { throw CLIError("cannot start a run of the sweep: \(String(cString: strerror(errno)))") }
                    close(toChild); close(fromChild)
                    running.append((pid, p, Date()))
                    log("sweep: started \(p.name)")
                }
            }
            usleep(200_000)
            if let sig = interruptSignal {
                // ask every run to stop after its iteration and write its checkpoint, then wait
                log("sweep: signal \(sig): stopping \(running.count) run(s) at their next checkpoint")
                for r in running { _ = ft_stop_group(r.pid, 600_000) }
                running.removeAll()
                try writeTables(points: points, dir: dir)
                throw CLIError.interrupted(sig, "sweep interrupted: every run stopped at a checkpoint; run the same command again to go on")
            }
            var i = 0
            while i < running.count {
                var status: Int32 = 0
                guard ft_group_leader_running(running[i].pid, &status) == 0 else { i += 1; continue }
                let r = running.remove(at: i)
                _ = ft_stop_group(r.pid, 1000)     // reap whatever of its group is left
                let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
                if code == 0 {
                    done += 1
                    durations.append(Date().timeIntervalSince(r.started))
                } else {
                    let logURL = dir.appendingPathComponent(r.point.name).appendingPathComponent("finetune.log")
                    let lastLine = (try? String(contentsOf: logURL, encoding: .utf8))?.split(separator: "\n").last.map(String.init) ?? ""
                    failed.append((r.point, "exit \(code): \(lastLine)"))
                    log("sweep: \(r.point.name) failed (exit \(code)): \(lastLine)")
                }
                progress()
            }
        }
        return failed
    }

    /// A run folder the sweep finds is reused (skipped when finished, else resumed) only if it was
    /// made with the configuration the sweep would run now (its length aside: a resume extends
    /// it); a folder of other settings is an error naming them, and nothing is overwritten.
    func checkReusable(_ runDir: URL, as p: SweepPoint) throws {
        let url = runDir.appendingPathComponent("config.json")
        guard FileManager.default.fileExists(atPath: url.path) else { return }
        var saved = try loadRunConfig(url, what: "cannot read the configuration", action: "reuse")
        var wanted = p.config
        saved.steps = 0; wanted.steps = 0
        // the checksum the run recorded must be the model file's now
        if let recorded = saved.modelChecksum {
            wanted.modelChecksum = SafeTensorsFile.checksum(of: try SafeTensorsFile.read(URL(fileURLWithPath: wanted.model)))
            guard recorded == wanted.modelChecksum else {
                throw CLIError("sweep: \(runDir.path) was trained from another file at \(wanted.model) (CRC-32 \(recorded), now \(wanted.modelChecksum!)); give another --out, or move that run away")
            }
        }
        guard saved != wanted else { return }
        let list = FinetuneConfig.table.differences(saved, wanted).prefix(4).map { n in
            let s = FinetuneConfig.table[n]!
            return "--\(n) \(s.text(of: saved)) (the sweep's: \(s.text(of: wanted)))"
        }.joined(separator: ", ")
        throw CLIError("sweep: \(runDir.path) holds a run made with other settings: \(list.isEmpty ? "its configuration differs" : list); give another --out, or move that run away (nothing is overwritten)")
    }

    func gains() throws -> [Double] { try parseNumbers(proxyGains, option: "--proxy-gains") }

    /// sweep.jsonl, sweep.md and frontier.png from every run folder that has metrics.
    func writeTables(points: [SweepPoint], dir: URL) throws {
        let runs = points.compactMap { p in (try? RunMetrics(url: dir.appendingPathComponent(p.name).appendingPathComponent("metrics.jsonl"))).map { (point: p, metrics: $0) } }
        let rows = try runs.map { try SummaryRow(point: $0.point, metrics: $0.metrics) }
        guard !rows.isEmpty else { return }
        try writeAtomically(zip(rows, runs).map { $0.json(run: $1.point.name).text + "\n" }.joined(), to: dir.appendingPathComponent("sweep.jsonl"))
        try writeAtomically(SweepReport.markdown(rows, reward: try options.config.reward, gains: try gains()), to: dir.appendingPathComponent("sweep.md"))
        // the chart needs gold metrics: runs that never evaluate (--eval-every 0) have none
        if rows.contains(where: { !$0.summary.golds.isEmpty }) {
            try writeAtomically(try SweepReport.frontier(rows).pngData(), to: dir.appendingPathComponent("frontier.png"))
        } else {
            log("sweep: no run has gold metrics (--eval-every 0), so no frontier.png")
        }
        // goodhart.png: the gold against sqrt(KL to the base model), one fit per configuration
        // (its seeds pooled), for the runs whose evaluations carry kl_base
        let spec = try RewardSpec(parsing: try options.config.reward)
        if let gold = GoodhartChart.gold(optimised: spec.optimisedNames, scorers: spec.terms.map(\.name)) {
            var chart = GoodhartChart(gold: gold)
            for (run, row) in zip(runs, rows) { chart.add(run: run.metrics, label: row.configurationKey.isEmpty ? "runs" : row.configurationKey) }
            if !chart.groups.isEmpty {
                let (image, fits) = chart.render()
                try writeAtomically(try image.pngData(), to: dir.appendingPathComponent("goodhart.png"))
                try writeAtomically(GoodhartChart.json(fits), to: dir.appendingPathComponent("goodhart.json"))
            }
        }
    }
}

/// A word for /bin/sh: single-quoted, with embedded single quotes escaped.
func shellQuote(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }
