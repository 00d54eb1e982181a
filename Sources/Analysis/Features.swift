/// The fixed feature extractor behind the Frechet distance and the diversity metric.
///
/// For an (S, S, 3) image in [-1, 1]: the 4x4 average-pooled image (48 values: coarse layout
/// and colour), the per-channel standard deviation (3: contrast), and the per-channel mean
/// absolute horizontal and vertical differences between neighbouring pixels (6: edges and
/// texture, which is what JPEG-style reward hacking changes first). 57 values, no learning.
public enum ImageFeatures {
    public static let dimension = 57

    public static func extract(_ img: [Float], size S: Int) -> [Double] {
        var f = [Double](repeating: 0, count: dimension)
        let cell = S / 4
        for y in 0..<S { for x in 0..<S { for c in 0..<3 {
            f[((y / cell) * 4 + x / cell) * 3 + c] += Double(img[(y * S + x) * 3 + c])
        } } }
        for i in 0..<48 { f[i] /= Double(cell * cell) }
        for c in 0..<3 {
            var s = 0.0, s2 = 0.0, gx = 0.0, gy = 0.0
            for y in 0..<S { for x in 0..<S {
                let v = Double(img[(y * S + x) * 3 + c])
                s += v; s2 += v * v
                if x + 1 < S { gx += abs(Double(img[(y * S + x + 1) * 3 + c]) - v) }
                if y + 1 < S { gy += abs(Double(img[((y + 1) * S + x) * 3 + c]) - v) }
            } }
            let n = Double(S * S)
            f[48 + c] = max(0, s2 / n - (s / n) * (s / n)).squareRoot()
            f[51 + c] = gx / Double(S * (S - 1))
            f[54 + c] = gy / Double(S * (S - 1))
        }
        return f
    }

    public static let compactDimension = 21

    /// The 21-value summary of a 57-value feature vector for a Frechet distance that 64 samples
    /// can estimate: the 2x2 average-pooled image (12: the 4x4 cells averaged in fours), the
    /// per-channel standard deviation (3) and the edge statistics (6).
    public static func compact(_ f: [Double]) -> [Double] {
        var out = [Double](repeating: 0, count: compactDimension)
        for by in 0..<2 { for bx in 0..<2 { for c in 0..<3 {
            var s = 0.0
            for dy in 0..<2 { for dx in 0..<2 { s += f[((2 * by + dy) * 4 + 2 * bx + dx) * 3 + c] } }
            out[(by * 2 + bx) * 3 + c] = s / 4
        } } }
        for i in 0..<9 { out[12 + i] = f[48 + i] }
        return out
    }
}

/// Frechet distance between Gaussians fitted to two feature sets:
/// ||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2).
public func frechetDistance(_ a: [[Double]], _ b: [[Double]]) -> Double {
    let (m1, c1) = meanCovariance(a), (m2, c2) = meanCovariance(b)
    let d = m1.count
    var dist = 0.0
    for i in 0..<d { dist += (m1[i] - m2[i]) * (m1[i] - m2[i]) }
    let s1 = symmetricSqrt(c1, d)
    let m = matmul(matmul(s1, c2, d), s1, d)
    let (eig, _) = jacobiEigen(m, d)
    var tr = 0.0
    for i in 0..<d { tr += c1[i * d + i] + c2[i * d + i] }
    tr -= 2 * eig.reduce(0) { $0 + max(0, $1).squareRoot() }
    return dist + tr
}

func meanCovariance(_ x: [[Double]]) -> ([Double], [Double]) {
    let n = x.count, d = x[0].count
    var m = [Double](repeating: 0, count: d)
    for v in x { for i in 0..<d { m[i] += v[i] / Double(n) } }
    var c = [Double](repeating: 0, count: d * d)
    for v in x { for i in 0..<d { for j in 0..<d { c[i * d + j] += (v[i] - m[i]) * (v[j] - m[j]) / Double(max(n - 1, 1)) } } }
    return (m, c)
}

func matmul(_ a: [Double], _ b: [Double], _ d: Int) -> [Double] {
    var c = [Double](repeating: 0, count: d * d)
    for i in 0..<d { for k in 0..<d { let aik = a[i * d + k]; if aik == 0 { continue }; for j in 0..<d { c[i * d + j] += aik * b[k * d + j] } } }
    return c
}

/// Square root of a symmetric positive semi-definite matrix through its eigen-decomposition.
func symmetricSqrt(_ a: [Double], _ d: Int) -> [Double] {
    let (w, v) = jacobiEigen(a, d)
    var out = [Double](repeating: 0, count: d * d)
    for k in 0..<d {
        let s = max(0, w[k]).squareRoot()
        for i in 0..<d { for j in 0..<d { out[i * d + j] += v[i * d + k] * s * v[j * d + k] } }
    }
    return out
}

/// Eigenvalues and eigenvectors (columns) of a symmetric matrix by cyclic Jacobi rotations.
public func jacobiEigen(_ input: [Double], _ d: Int) -> ([Double], [Double]) {
    var a = input
    var v = [Double](repeating: 0, count: d * d)
    for i in 0..<d { v[i * d + i] = 1 }
    for _ in 0..<100 {
        var off = 0.0
        for i in 0..<d { for j in (i + 1)..<max(i + 1, d) { off += a[i * d + j] * a[i * d + j] } }
        if off < 1e-22 { break }
        for p in 0..<d {
            for q in (p + 1)..<max(p + 1, d) {
                let apq = a[p * d + q]
                if abs(apq) < 1e-300 { continue }
                let theta = (a[q * d + q] - a[p * d + p]) / (2 * apq)
                let t = (theta >= 0 ? 1.0 : -1.0) / (abs(theta) + (theta * theta + 1).squareRoot())
                let c = 1 / (t * t + 1).squareRoot(), s = t * c
                for k in 0..<d {
                    let akp = a[k * d + p], akq = a[k * d + q]
                    a[k * d + p] = c * akp - s * akq
                    a[k * d + q] = s * akp + c * akq
                }
                for k in 0..<d {
                    let apk = a[p * d + k], aqk = a[q * d + k]
                    a[p * d + k] = c * apk - s * aqk
                    a[q * d + k] = s * apk + c * aqk
                }
                for k in 0..<d {
                    let vkp = v[k * d + p], vkq = v[k * d + q]
                    v[k * d + p] = c * vkp - s * vkq
                    v[k * d + q] = s * vkp + c * vkq
                }
            }
        }
    }
    return ((0..<d).map { a[$0 * d + $0] }, v)
}
