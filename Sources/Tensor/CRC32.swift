/// CRC-32 (IEEE 802.3, the polynomial of zlib, PNG and gzip), table-driven, 8 bytes per round.
/// `crc32(Array("123456789".utf8))` is 0xCBF43926.
public func crc32(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
    CRC32Table.ieee.checksum(bytes, continuing: crc)
}

public func crc32(_ bytes: [UInt8]) -> UInt32 { bytes.withUnsafeBytes { crc32($0) } }

/// CRC-32C (Castagnoli, the checksum of TFRecord and TensorBoard event files).
/// `crc32c(Array("123456789".utf8))` is 0xE3069283.
public func crc32c(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
    CRC32Table.castagnoli.checksum(bytes, continuing: crc)
}

public func crc32c(_ bytes: [UInt8]) -> UInt32 { bytes.withUnsafeBytes { crc32c($0) } }

/// Slicing-by-8 tables of a reflected 32-bit CRC polynomial.
struct CRC32Table: Sendable {
    static let ieee = CRC32Table(polynomial: 0xEDB8_8320)
    static let castagnoli = CRC32Table(polynomial: 0x82F6_3B78)

    /// slices[0] is the byte-wise table; slices[k][i] advances slices[k-1][i] by one more zero byte.
    let slices: [[UInt32]]

    init(polynomial: UInt32) {
        var t = [[UInt32]](repeating: [UInt32](repeating: 0, count: 256), count: 8)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = c & 1 != 0 ? polynomial ^ (c >> 1) : c >> 1 }
            t[0][i] = c
        }
        for k in 1..<8 { for i in 0..<256 { t[k][i] = t[0][Int(t[k - 1][i] & 0xff)] ^ (t[k - 1][i] >> 8) } }
        slices = t
    }

    func checksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32) -> UInt32 {
        var c = ~crc
        var p = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)
        var n = bytes.count
        let t = slices
        while n >= 8, let q = p {
            let lo = c ^ (UInt32(q[0]) | UInt32(q[1]) << 8 | UInt32(q[2]) << 16 | UInt32(q[3]) << 24)
            c = t[7][Int(lo & 0xff)] ^ t[6][Int((lo >> 8) & 0xff)] ^ t[5][Int((lo >> 16) & 0xff)] ^ t[4][Int(lo >> 24)]
                ^ t[3][Int(q[4])] ^ t[2][Int(q[5])] ^ t[1][Int(q[6])] ^ t[0][Int(q[7])]
            p = q + 8; n -= 8
        }
        while n > 0, let q = p {
            c = t[0][Int((c ^ UInt32(q[0])) & 0xff)] ^ (c >> 8)
            p = q + 1; n -= 1
        }
        return ~c
    }
}
