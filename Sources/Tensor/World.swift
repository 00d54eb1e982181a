#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif
import CMPI

/// The processes of a data-parallel run. A plain `flowtune` is a world of one (rank 0 of 1) and
/// never touches MPI; started by OpenMPI's `mpirun` (OMPI_COMM_WORLD_SIZE in the environment),
/// `World.start()` loads libmpi at run time and every rank joins MPI_COMM_WORLD. Collectives
/// on a world of one return their input, so the training code calls them unconditionally.
public final class World: @unchecked Sendable {
    public let rank: Int
    public let size: Int
    let mpi: Bool

    init(rank: Int, size: Int, mpi: Bool) { self.rank = rank; self.size = size; self.mpi = mpi }

    /// A world of one process.
    public static let single = World(rank: 0, size: 1, mpi: false)
    /// The world this process belongs to: one process, until `start()` finds mpirun.
    public private(set) static var current = single

    /// Joins the MPI job when mpirun started this process (once; later calls return it).
    @discardableResult
    public static func start() throws -> World {
        guard !current.mpi, getenv("OMPI_COMM_WORLD_SIZE") != nil else { return current }
        var rank: Int32 = 0, size: Int32 = 0
        var err = [CChar](repeating: 0, count: 512)
        guard ft_mpi_init(&rank, &size, &err, err.count) == 0 else {
            throw WorldError(String(cString: err))
        }
        current = World(rank: Int(rank), size: Int(size), mpi: true)
        return current
    }

    /// The rank mpirun gave this process, read from its environment (so known before `start()`,
    /// while the command line is parsed); 0 without mpirun.
    public static var launchedRank: Int { getenv("OMPI_COMM_WORLD_RANK").flatMap { Int(String(cString: $0)) } ?? 0 }

    /// Rank 0: the one that writes files and prints progress.
    public var isRoot: Bool { rank == 0 }
    public var isDistributed: Bool { size > 1 }
    /// Whether collectives have anything to do (MPI with more than one rank).
    private var active: Bool { mpi && size > 1 }

    /// Ends the MPI job cleanly (every rank must call it; nothing for a world of one).
    public func finish() { if mpi { ft_mpi_finalize() } }
    /// Takes every rank down (after an error on this one: the others would wait forever).
    public func abort(code: Int32) { if active { ft_mpi_abort(code) } }

    /// In place: the sum over every rank.
    public func sum(_ values: UnsafeMutablePointer<Float>, count: Int) {
        if active { ft_mpi_allreduce_sum_float(values, count) }
    }
    public func sum(_ values: FloatBuffer) { sum(values.pointer, count: values.count) }
    public func sum(_ values: inout [Double]) {
        if active { values.withUnsafeMutableBufferPointer { ft_mpi_allreduce_sum_double($0.baseAddress!, $0.count) } }
    }
    public func sum(_ value: Double) -> Double { var v = [value]; sum(&v); return v[0] }
    /// In place: the maximum over every rank.
    public func max(_ values: inout [Double]) {
        if active { values.withUnsafeMutableBufferPointer { ft_mpi_allreduce_max_double($0.baseAddress!, $0.count) } }
    }
    public func max(_ value: Double) -> Double { var v = [value]; max(&v); return v[0] }

    /// Every rank's values concatenated in rank order; `counts[r]` is rank r's count.
    public func gather(_ mine: [Float], counts: [Int]) -> [Float] {
        precondition(counts.count == size && counts[rank] == mine.count, "gather: rank \(rank) has \(mine.count) values, counts say \(counts)")
        guard active else { return mine }
        let displacements = counts.indices.map { counts[..<$0].reduce(0, +) }
        var out = [Float](repeating: 0, count: counts.reduce(0, +))
        let c32 = counts.map(Int32.init), d32 = displacements.map(Int32.init)
        mine.withUnsafeBufferPointer { m in
            out.withUnsafeMutableBufferPointer { o in
                ft_mpi_allgatherv_float(m.baseAddress, Int32(mine.count), o.baseAddress, c32, d32)
            }
        }
        return out
    }

    /// Rank `root`'s bytes on every rank (the others' arguments are ignored).
    public func broadcast(_ bytes: [UInt8], root: Int = 0) -> [UInt8] {
        guard active else { return bytes }
        var count = [Double(rank == root ? bytes.count : 0)]
        max(&count)
        var out = rank == root ? bytes : [UInt8](repeating: 0, count: Int(count[0]))
        out.withUnsafeMutableBytes { ft_mpi_bcast_bytes($0.baseAddress, $0.count, Int32(root)) }
        return out
    }

    /// A contiguous block of `count` items for this rank (rank r: the r-th of `size` near-equal parts).
    public func block(of count: Int) -> Range<Int> { (rank * count / size)..<((rank + 1) * count / size) }
    /// Every rank's `block(of:)` size, in rank order.
    public func blockCounts(of count: Int) -> [Int] { (0..<size).map { ($0 + 1) * count / size - $0 * count / size } }
}

public struct WorldError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
