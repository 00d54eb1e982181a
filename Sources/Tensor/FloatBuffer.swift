#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// A fixed-size, 64-byte-aligned Float buffer with a stable address (a reference type, so the
/// layer kernels can hold raw pointers into it). Copy with `copy()` when a value is meant.
///
/// Zero-filled buffers come from calloc: large ones are fresh pages from the OS that are zero
/// without being written, so a buffer that is never used (the backward scratch of a rollout
/// workspace, say) costs neither the time to clear it nor resident memory.
public final class FloatBuffer: @unchecked Sendable {
    public let count: Int
    public let pointer: UnsafeMutablePointer<Float>
    private let base: UnsafeMutableRawPointer   // what calloc returned (pointer is base rounded up to 64 bytes)

    /// A buffer of `count` floats; running out of memory is an error naming `purpose` and the size.
    public init(count: Int, value: Float = 0, purpose: @autoclosure () -> String) throws {
        let (bytes, overflow) = max(1, count).multipliedReportingOverflow(by: 4)
        guard count >= 0, !overflow, bytes < Int.max - 64, let raw = calloc(bytes + 64, 1) else {
            throw OutOfMemory(purpose: purpose(), bytes: count >= 0 && !overflow ? bytes : nil)
        }
        self.count = count
        base = raw
        let aligned = (Int(bitPattern: raw) + 63) & ~63
        pointer = UnsafeMutableRawPointer(bitPattern: aligned)!.bindMemory(to: Float.self, capacity: max(1, count))
        if value != 0 { pointer.update(repeating: value, count: count) }
    }
    /// A buffer for sizes the program chose (parameters, one image): running out of memory here
    /// ends the process with a message.
    public convenience init(count: Int, value: Float = 0) {
        do { try self.init(count: count, value: value, purpose: "a buffer") } catch { fatalError("\(error)") }
    }
    public convenience init(_ values: [Float]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { pointer.update(from: $0.baseAddress!, count: values.count) }
    }
    deinit { free(base) }

    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: pointer, count: count) }
    public var array: [Float] { Array(buffer) }
    public subscript(i: Int) -> Float {
        get { pointer[i] }
        set { pointer[i] = newValue }
    }
    public func zero() { pointer.update(repeating: 0, count: count) }
    public func copy() -> FloatBuffer {
        let b = FloatBuffer(count: count)
        b.pointer.update(from: pointer, count: count)
        return b
    }
    public func assign(from other: FloatBuffer) {
        precondition(other.count == count)
        pointer.update(from: other.pointer, count: count)
    }
    /// self = decay * self + (1 - decay) * other   (exponential moving average)
    public func ema(toward other: FloatBuffer, decay: Float) {
        precondition(other.count == count)
        let a = pointer, b = other.pointer
        for i in 0..<count { a[i] = decay * a[i] + (1 - decay) * b[i] }
    }
}

/// An allocation the system refused.
public struct OutOfMemory: Error, CustomStringConvertible {
    public let purpose: String
    public let bytes: Int?
    public var description: String {
        guard let bytes else { return "out of memory: \(purpose) needs more bytes than an address space holds" }
        return String(format: "out of memory: cannot allocate %.1f GiB for %@", Double(bytes) / 1_073_741_824, purpose)
    }
}


/// The machine's physical memory in bytes (0 where the system does not say).
public var physicalMemoryBytes: Int {
    let pages = sysconf(Int32(_SC_PHYS_PAGES)), size = sysconf(Int32(_SC_PAGESIZE))
    return pages > 0 && size > 0 ? pages * size : 0
}
