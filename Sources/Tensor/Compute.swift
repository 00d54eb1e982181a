import CKernels
import CBLAS
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// Which kernels run the products and how many threads flowtune's parallel loops use: a value,
/// resolved once (the CLI reads FLOWTUNE_KERNELS / FLOWTUNE_GEMM, FLOWTUNE_THREADS and --threads)
/// and bound for a scope with `run`. Code inside the scope reads `Compute.current`; code outside
/// any scope gets `Compute.detected` (the best kernels the CPU has, every core up to 8).
/// Nothing process-wide is switched: two tests, or a benchmark's two timings, can run different
/// paths at the same time.
public struct Compute: Sendable, Equatable, CustomStringConvertible {
    public var kernels: KernelPath
    public var workers: Int

    public init(kernels: KernelPath = .best, workers: Int = Compute.defaultWorkers) {
        self.kernels = kernels; self.workers = max(1, workers)
    }

    /// The binding in force (task-local: each task and each test sees its own).
    @TaskLocal public static var current = Compute.detected

    public static let detected = Compute()

    /// Runs `body` with this binding.
    public func run<R>(_ body: () throws -> R) rethrows -> R { try Compute.$current.withValue(self, operation: body) }

    public static let defaultWorkers = max(1, min(8, sysconf(Int32(_SC_NPROCESSORS_ONLN))))

    /// The binding from the environment: FLOWTUNE_KERNELS (or its older name FLOWTUNE_GEMM) and
    /// FLOWTUNE_THREADS; `threads` (a command's --threads) wins over the latter. Bad values throw.
    public static func fromEnvironment(threads: Int? = nil) throws -> Compute {
        func env(_ k: String) -> String? { getenv(k).map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } }
        var c = Compute()
        for key in ["FLOWTUNE_GEMM", "FLOWTUNE_KERNELS"] {
            guard let v = env(key) else { continue }
            guard let path = KernelPath(setting: v) else {
                throw ComputeError("\(key)='\(v)' is not a kernel choice; use one of \(KernelPath.settings)")
            }
            guard path.isAvailable else { throw ComputeError("\(key)='\(v)': this CPU cannot run the \(path) kernels") }
            c.kernels = path
        }
        if let v = env("FLOWTUNE_THREADS") {
            guard let n = Int(v), n > 0 else { throw ComputeError("FLOWTUNE_THREADS='\(v)' is not a positive number of threads") }
            c.workers = n
        }
        if let threads {
            guard threads >= 1 else { throw ComputeError("--threads must be at least 1") }
            c.workers = threads
        }
        return c
    }

    /// "flowtune-avx512", or "openblas-" and OpenBLAS's kernel family.
    public var gemmName: String { kernels == .openblas ? "openblas-" + BLASThreads.coreName : kernels.description }
    public var description: String { "\(gemmName), \(workers) thread(s)" }
}

/// The kernel family that serves GEMM and attention.
public enum KernelPath: String, Sendable, CaseIterable, CustomStringConvertible {
    /// flowtune's own AVX-512 GEMM and attention (CKernels).
    case avx512 = "flowtune-avx512"
    /// OpenBLAS for the products, Swift loops for attention.
    case openblas

    /// The best path this CPU runs.
    public static let best: KernelPath = KernelPath.avx512.isAvailable ? .avx512 : .openblas
    /// Every path this CPU runs, best first (tests run each).
    public static let available: [KernelPath] = allCases.filter(\.isAvailable)

    public var isAvailable: Bool {
        switch self {
        case .avx512: return Self.cpuHasAVX512
        case .openblas: return true
        }
    }
    private static let cpuHasAVX512 = ft_gemm_available() == 1

    /// The values FLOWTUNE_KERNELS accepts.
    public static let settings = "auto, avx512, openblas"
    public init?(setting: String) {
        switch setting.lowercased() {
        case "auto": self = .best
        case "avx512", "flowtune-avx512": self = .avx512
        case "openblas": self = .openblas
        default: return nil
        }
    }
    public var description: String { rawValue }
}

public struct ComputeError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

public enum BLASThreads {
    /// The OpenBLAS kernel family in use (e.g. "Haswell", "SkylakeX"; OPENBLAS_CORETYPE selects it).
    public static var coreName: String { String(cString: openblas_get_corename()) }

    /// Evaluated once, on the first GEMM: OpenBLAS's own pool is reduced to one thread.
    static let singleThreaded: Void = { openblas_set_num_threads(1) }()
}
