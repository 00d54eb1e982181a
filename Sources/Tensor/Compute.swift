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
    /// The number format of every GEMM's inputs (attention, the element-wise loops and the
    /// optimizer stay fp32 in both). Only `.fp32` or a precision `kernels` runs (see `check`).
    public var precision: Precision

    public init(kernels: KernelPath = .best, workers: Int = Compute.defaultWorkers, precision: Precision = .fp32) {
        self.kernels = kernels; self.workers = max(1, workers); self.precision = precision
    }

    /// This binding with its GEMMs in `precision`, checked (see `check`).
    public func with(_ precision: Precision) throws -> Compute {
        var c = self
        c.precision = precision
        try c.check()
        return c
    }

    /// Throws unless `kernels` runs `precision` on this CPU.
    public func check() throws {
        guard kernels.runs(precision) else {
            let why = precision == .bf16 && kernels == .avx512 ? "this CPU has no AVX512-BF16"
                : "the \(kernels) kernels have no \(precision) GEMM (only flowtune-avx512 on a CPU with AVX512-BF16)"
            throw ComputeError("--precision \(precision): \(why); use --precision fp32")
        }
    }

    /// The own GEMM in force (ft_sgemm_fused's contract), nil for OpenBLAS (whose products are
    /// fp32 whatever `precision` says: `check` refuses that pairing).
    var gemm: KernelPath.GEMM? { kernels == .avx512 && precision == .bf16 ? ft_bf16_gemm_fused : kernels.gemm }

    /// The binding in force (task-local: each task and each test sees its own).
    @TaskLocal public static var current = Compute.detected

    public static let detected = Compute()

    /// Runs `body` with this binding.
    public func run<R>(_ body: () throws -> R) rethrows -> R { try Compute.$current.withValue(self, operation: body) }

    /// Every core up to 8, shared among the processes mpirun started on this machine.
    public static let defaultWorkers: Int = {
        let local = getenv("OMPI_COMM_WORLD_LOCAL_SIZE").flatMap { Int(String(cString: $0)) } ?? 1
        return max(1, min(8, sysconf(Int32(_SC_NPROCESSORS_ONLN)) / max(1, local)))
    }()

    /// The binding from the environment: FLOWTUNE_KERNELS (or its older name FLOWTUNE_GEMM) and
    /// FLOWTUNE_THREADS; `threads` (a command's --threads) wins over the latter. Bad values throw.
    /// With `precision` (a command's --precision), that format, checked against the kernels.
    public static func fromEnvironment(threads: Int? = nil, precision: Precision = .fp32) throws -> Compute {
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
        return try c.with(precision)
    }

    /// "flowtune-avx512", or "openblas-" and OpenBLAS's kernel family.
    public var gemmName: String { kernels == .openblas ? "openblas-" + BLASThreads.coreName : kernels.description }
    public var description: String { "\(gemmName)\(precision == .bf16 ? " bf16" : ""), \(workers) thread(s)" }
}

/// The number format of a GEMM's inputs. `.bf16`: op(A) and op(B) rounded to bfloat16 (8 bits of
/// mantissa) as the kernel packs them, every product accumulated in fp32, the result fp32: mixed
/// precision as autocast does it, with no tensor ever stored in bf16 (the weights, AdamW's
/// moments and the loss stay fp32).
public enum Precision: String, Codable, Sendable, CaseIterable, CustomStringConvertible {
    case fp32, bf16
    public var description: String { rawValue }
    /// Whether this CPU has a bf16 GEMM (AVX-512F, AVX512BW and AVX512_BF16).
    public static let cpuHasBF16 = ft_bf16_available() == 1
}

/// The kernel family that serves GEMM and attention.
public enum KernelPath: String, Sendable, CaseIterable, CustomStringConvertible {
    /// flowtune's own AVX-512 GEMM and attention (CKernels).
    case avx512 = "flowtune-avx512"
    /// flowtune's own AVX2 + FMA GEMM and attention (CKernels), for CPUs without AVX-512.
    case avx2 = "flowtune-avx2"
    /// OpenBLAS for the products, Swift loops for attention.
    case openblas

    /// The best path this CPU runs (AVX-512 > AVX2 > OpenBLAS).
    public static let best: KernelPath = available[0]
    /// Every path this CPU runs, best first (tests run each).
    public static let available: [KernelPath] = allCases.filter(\.isAvailable)

    public var isAvailable: Bool {
        switch self {
        case .avx512: return Self.cpuHasAVX512
        case .avx2: return Self.cpuHasAVX2
        case .openblas: return true
        }
    }
    /// Whether this path's GEMM runs `precision` on this CPU: fp32 everywhere it runs, bf16 only
    /// on the AVX-512 path of a CPU with AVX512-BF16 (FLOWTUNE_KERNELS=avx2 or openblas rules it out).
    public func runs(_ precision: Precision) -> Bool {
        guard isAvailable else { return false }
        return precision == .fp32 || (self == .avx512 && Precision.cpuHasBF16)
    }
    private static let cpuHasAVX512 = ft_gemm_available() == 1
    private static let cpuHasAVX2 = ft_avx2_available() == 1

    /// The values FLOWTUNE_KERNELS accepts.
    public static let settings = "auto, avx512, avx2, openblas"
    public init?(setting: String) {
        switch setting.lowercased() {
        case "auto": self = .best
        case "avx512", "flowtune-avx512": self = .avx512
        case "avx2", "flowtune-avx2": self = .avx2
        case "openblas": self = .openblas
        default: return nil
        }
    }
    public var description: String { rawValue }

    typealias GEMM = @convention(c) (Int32, Int32, Int, Int, Int, Float, UnsafePointer<Float>?, Int, UnsafePointer<Float>?, Int,
                                     Float, UnsafeMutablePointer<Float>?, Int, UnsafePointer<Float>?, UnsafeMutablePointer<Float>?, Int) -> Int32

    /// The own GEMM of this path (ft_sgemm_fused's contract), nil for OpenBLAS.
    var gemm: GEMM? {
        switch self {
        case .avx512: return ft_sgemm_fused
        case .avx2: return ft_avx2_sgemm_fused
        case .openblas: return nil
        }
    }

    /// The own attention kernels of this path, nil for OpenBLAS (Swift loops around its GEMM).
    var attention: (forward: @convention(c) (Int, Int, Float, UnsafePointer<Float>?, UnsafePointer<Float>?, UnsafePointer<Float>?, Int,
                                             UnsafePointer<Float>?, UnsafeMutablePointer<Float>?, UnsafeMutablePointer<Float>?, Int) -> Int32,
                    backward: @convention(c) (Int, Int, Float, UnsafePointer<Float>?, UnsafePointer<Float>?, UnsafePointer<Float>?, Int,
                                              UnsafePointer<Float>?, UnsafePointer<Float>?, Int, UnsafeMutablePointer<Float>?,
                                              UnsafeMutablePointer<Float>?, UnsafeMutablePointer<Float>?, Int) -> Int32)? {
        switch self {
        case .avx512: return (ft_attention_forward, ft_attention_backward)
        case .avx2: return (ft_avx2_attention_forward, ft_avx2_attention_backward)
        case .openblas: return nil
        }
    }
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
