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

    public init(count: Int, value: Float = 0) {
        self.count = count
        guard let raw = calloc(max(1, count) * 4 + 64, 1) else {
            fatalError("out of memory: a buffer of \(count) floats")
        }
        base = raw
        let aligned = (Int(bitPattern: raw) + 63) & ~63
        pointer = UnsafeMutableRawPointer(bitPattern: aligned)!.bindMemory(to: Float.self, capacity: max(1, count))
        if value != 0 { pointer.update(repeating: value, count: count) }
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

#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif
