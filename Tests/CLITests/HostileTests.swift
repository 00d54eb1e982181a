import Testing
import TestSupport
import Foundation
import Analysis
import Tensor
import Model
import Training
import Shapes

/// Faults a hostile but realistic user meets, each against the release binary where the
/// behaviour is the binary's: outputs that are devices, links or planted temporary files;
/// standard streams that are closed, full or a pipe whose reader left; a signal sent twice by one
/// sender; sweeps over folders of other settings. (Damaged runs, model files and unbounded
/// options are in the bad-input corpus.)
@Suite(.serialized) struct HostileTests {
    /// The release binary (where a missing check reads or writes out of bounds), else the debug one.
    static let binary = cliBinaries.last
    static let enabled = binary != nil

    /// A tiny model, prompts and a fresh folder.
    final class Scene {
        let setup: TinySetup
        var dir: URL { setup.dir }
        init() throws { setup = try TinySetup() }
        deinit { setup.cleanUp() }
        var tiny: [String] {
            ["--model", setup.model.path, "--prompts", setup.prompts.path, "--eval-prompts", setup.evalPrompts.path,
             "--prompts-per-iteration", "2", "--group-size", "2", "--sde-steps", "2", "--eval-every", "0", "--threads", "1", "--reward", "brightness"]
        }
        var sampleArgs: [String] { ["render", "--prompts", setup.evalPrompts.path, "--per-prompt", "1"] }
        /// `bash -c script` in the scene's folder with $F the binary: (exit status, stdout + stderr).
        @discardableResult
        func sh(_ script: String, timeout: Double = 120) throws -> (Int32, String) {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/bash")
            p.arguments = ["-c", script]
            p.currentDirectoryURL = dir
            var env = ProcessInfo.processInfo.environment
            env["F"] = HostileTests.binary!.path
            p.environment = env
            let out = dir.appendingPathComponent(".sh-\(UUID().uuidString).out")
            _ = FileManager.default.createFile(atPath: out.path, contents: nil)
            defer { try? FileManager.default.removeItem(at: out) }
            let h = try FileHandle(forWritingTo: out)
            p.standardOutput = h; p.standardError = h
            try p.run()
            let deadline = Date().addingTimeInterval(timeout)
            while p.isRunning && Date() < deadline { usleep(10_000) }
            if p.isRunning { kill(p.processIdentifier, SIGKILL) }
            p.waitUntilExit()
            try h.close()
            return (p.terminationStatus, String(decoding: try Data(contentsOf: out), as: UTF8.self))
        }
        func q(_ args: [String]) -> String { args.map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ") }
    }

    static func fileType(_ path: String) -> mode_t {
        var st = stat()
        return lstat(path, &st) == 0 ? st.st_mode & S_IFMT : 0
    }

    // MARK: outputs

    /// A character device is written into, never replaced (as root, a node made here: /dev/null's
    /// numbers); /dev/full's error is one line; a FIFO with a reader receives the PNG; a link
    /// stays a link and the file it names is replaced; a link to nothing is an error.
    @Test(.enabled(if: enabled)) func outputsThatAreNotRegularFilesAreNeverReplaced() throws {
        let s = try Scene()
        let a = s.q(s.sampleArgs)
        if getuid() == 0 {
            #expect(mknod(s.dir.appendingPathComponent("null").path, S_IFCHR | 0o666, dev_t((1 << 8) | 3)) == 0)
            let (rc, out) = try s.sh("\"$F\" \(a) --out null")
            #expect(rc == 0, "\(out)")
            #expect(Self.fileType(s.dir.appendingPathComponent("null").path) == S_IFCHR, "the device was replaced")
        }
        let (full, fullOut) = try s.sh("\"$F\" \(a) --out /dev/full")
        #expect(full == 1 && fullOut.contains("error: cannot write /dev/full: No space left on device"), "\(fullOut)")
        #expect(Self.fileType("/dev/full") == S_IFCHR)
        // a FIFO with a reader
        #expect(mkfifo(s.dir.appendingPathComponent("fifo").path, 0o644) == 0)
        let (fifo, fifoOut) = try s.sh("cat fifo > got.bin & \"$F\" \(a) --out fifo; rc=$?; wait; exit $rc")
        #expect(fifo == 0, "\(fifoOut)")
        #expect(try Data(contentsOf: s.dir.appendingPathComponent("got.bin")).prefix(4) == Data([0x89, 0x50, 0x4E, 0x47]))
        #expect(Self.fileType(s.dir.appendingPathComponent("fifo").path) == S_IFIFO)
        // a FIFO nobody reads: an error, not a wait
        let (lonely, lonelyOut) = try s.sh("\"$F\" \(a) --out fifo", timeout: 60)
        #expect(lonely == 1 && lonelyOut.contains("a pipe that nobody reads"), "\(lonelyOut)")
        // a link to a regular file
        try "victim\n".write(to: s.dir.appendingPathComponent("victim.txt"), atomically: true, encoding: .utf8)
        #expect(symlink("victim.txt", s.dir.appendingPathComponent("link.png").path) == 0)
        let (link, linkOut) = try s.sh("\"$F\" \(a) --out link.png")
        #expect(link == 0, "\(linkOut)")
        #expect(Self.fileType(s.dir.appendingPathComponent("link.png").path) == S_IFLNK)
        #expect(try Data(contentsOf: s.dir.appendingPathComponent("victim.txt")).prefix(4) == Data([0x89, 0x50, 0x4E, 0x47]))
        #expect(symlink("nowhere", s.dir.appendingPathComponent("dangling.png").path) == 0)
        let (dangling, danglingOut) = try s.sh("\"$F\" \(a) --out dangling.png")
        #expect(dangling == 1 && danglingOut.contains("a symbolic link to nothing"), "\(danglingOut)")
        #expect(!FileManager.default.fileExists(atPath: s.dir.appendingPathComponent("nowhere").path))
    }

    /// The temporary file of an atomic write is not predictable and never follows a link: links
    /// planted at the names a PID-based scheme would use (the process keeps the shell's PID through
    /// exec) leave their victim untouched, and no temporary file is left behind.
    @Test(.enabled(if: enabled)) func plantedTemporaryLinksAreNotFollowed() throws {
        let s = try Scene()
        try "victim\n".write(to: s.dir.appendingPathComponent("victim.txt"), atomically: true, encoding: .utf8)
        let (rc, out) = try s.sh("ln -s victim.txt .g.png.$$.tmp; ln -s victim.txt .g.png.tmp; exec \"$F\" \(s.q(s.sampleArgs)) --out g.png")
        #expect(rc == 0, "\(out)")
        #expect(try String(contentsOf: s.dir.appendingPathComponent("victim.txt"), encoding: .utf8) == "victim\n")
        #expect(Self.fileType(s.dir.appendingPathComponent("g.png").path) == S_IFREG)
        let left = try FileManager.default.contentsOfDirectory(atPath: s.dir.path).filter { $0.hasPrefix(".g.png.") && !$0.hasSuffix("$$.tmp") }
        #expect(left.allSatisfy { Self.fileType(s.dir.appendingPathComponent($0).path) == S_IFLNK }, "\(left)")
        // the name of the temporary file differs from write to write, and an existing name is never opened
        let target = s.dir.appendingPathComponent("t.bin")
        let (fd1, p1) = try createTemporary(beside: target), (fd2, p2) = try createTemporary(beside: target)
        close(fd1); close(fd2); unlink(p1); unlink(p2)
        #expect(p1 != p2)
    }

    // MARK: standard streams

    /// stderr that is a pipe whose reader left, a full device or closed: the run goes on to its
    /// end (checkpoint written, exit 0), and no file of the run takes descriptor 2. stdout that
    /// cannot be written is an error exit, not a silent 0.
    @Test(.enabled(if: enabled)) func standardStreamsThatFailDoNotTrap() throws {
        let s = try Scene()
        let run = s.q(["finetune"] + s.tiny + ["--steps", "3"])
        let (piped, pipedOut) = try s.sh("\"$F\" \(run) --out a 2>&1 | head -c 10 >/dev/null; exit ${PIPESTATUS[0]}")
        #expect(piped == 0, "\(pipedOut)")
        #expect(FileManager.default.fileExists(atPath: s.dir.appendingPathComponent("a/checkpoints/state.safetensors").path))
        let (full, _) = try s.sh("\"$F\" \(run) --out c 2>/dev/full")
        #expect(full == 0)
        let (closed, _) = try s.sh("\"$F\" \(run) --out d 2>&-")
        #expect(closed == 0)
        let lock = (try? Data(contentsOf: s.dir.appendingPathComponent("d/.lock"))) ?? Data()
        #expect(lock.isEmpty, "the lock file took stderr: \(String(decoding: lock, as: UTF8.self).prefix(200))")
        let (json, jsonOut) = try s.sh("\"$F\" evaluate --model \(s.q([s.setup.model.path])) --prompts \(s.q([s.setup.evalPrompts.path])) --per-prompt 1 --steps 2 --json > /dev/full")
        #expect(json == 1 && jsonOut.contains("cannot write to standard output"), "\(jsonOut)")
    }

    /// GNU timeout signals its child and then the child's whole group: one SIGTERM sent twice by
    /// one process is one request, so the run stops cleanly after its iteration with a checkpoint
    /// and says so.
    @Test(.enabled(if: enabled)) func oneSignalSentTwiceByOneSenderIsOneRequest() throws {
        let s = try Scene()
        let run = s.q(["finetune"] + s.tiny + ["--steps", "100000"])
        let script = """
        "$F" \(run) --out r 2> err.txt & pid=$!
        while [ ! -s r/metrics.jsonl ]; do sleep 0.05; done
        kill -TERM $pid; kill -TERM $pid
        wait $pid; echo "rc=$?"
        """
        let (_, out) = try s.sh(script)
        let err = (try? String(contentsOf: s.dir.appendingPathComponent("err.txt"), encoding: .utf8)) ?? ""
        #expect(out.contains("rc=143"), "\(out)")
        #expect(err.contains("interrupted (signal 15)") && err.contains("checkpoint written"), "\(err.suffix(400))")
        #expect(FileManager.default.fileExists(atPath: s.dir.appendingPathComponent("r/checkpoints/state.safetensors").path))
        // with GNU timeout itself
        let (_, tout) = try s.sh("timeout -s TERM 3 \"$F\" \(s.q(["finetune"] + s.tiny + ["--steps", "100000"])) --out t 2> terr.txt; echo \"rc=$?\"")
        let terr = (try? String(contentsOf: s.dir.appendingPathComponent("terr.txt"), encoding: .utf8)) ?? ""
        #expect(tout.contains("rc=124") && terr.contains("checkpoint written"), "\(tout) \(terr.suffix(300))")
    }

    /// Counters are 64-bit in messages.
    @Test(.enabled(if: enabled)) func largeCountsPrintAsThemselves() throws {
        let s = try Scene()
        let (_, out) = try s.sh("\"$F\" \(s.q(["finetune"] + s.tiny + ["--steps", "3000000000"])) --out r 2>&1 & pid=$!; while [ ! -s r/metrics.jsonl ]; do sleep 0.05; done; kill -TERM $pid; wait $pid")
        #expect(out.contains("iter 1/3000000000"), "\(out.prefix(600))")
    }

    // MARK: sweeps

    /// A sweep reuses a run only if it was made with the settings the sweep would run now; a
    /// sweep without evaluations ends without a chart instead of failing.
    @Test(.enabled(if: enabled)) func sweepsReuseOnlyRunsOfTheirOwnSettings() throws {
        let s = try Scene()
        let sweep = ["sweep"] + s.tiny + ["--steps", "1", "--out", "sw"]
        let (first, firstOut) = try s.sh("\"$F\" \(s.q(sweep))")
        #expect(first == 0, "\(firstOut.suffix(600))")
        #expect(!FileManager.default.fileExists(atPath: s.dir.appendingPathComponent("sw/frontier.png").path))
        let (again, againOut) = try s.sh("\"$F\" \(s.q(sweep))")
        #expect(again == 0 && againOut.contains("already finished, skipped"), "\(againOut.suffix(600))")
        let before = try BadInputFixtures.contents(of: s.dir.appendingPathComponent("sw"))
        let other = sweep.map { $0 == "brightness" ? "saturation" : $0 }
        let (refused, refusedOut) = try s.sh("\"$F\" \(s.q(other))")
        #expect(refused == 1 && refusedOut.contains("holds a run made with other settings: --reward brightness (the sweep's: saturation)"), "\(refusedOut.suffix(600))")
        let (refused2, refused2Out) = try s.sh("\"$F\" \(s.q(sweep)) --group-size 4")
        #expect(refused2 == 1 && refused2Out.contains("--group-size 2 (the sweep's: 4)"), "\(refused2Out.suffix(600))")
        var after = try BadInputFixtures.contents(of: s.dir.appendingPathComponent("sw"))
        after["/sweep-grid.json"] = before["/sweep-grid.json"]
        #expect(after == before, "a refused sweep changed the runs")
    }
}
