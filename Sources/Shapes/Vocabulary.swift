/// The words of the shapes world, fixed lists: the palette, the shapes, sizes, positions.

public enum ShapeColor: String, CaseIterable, Codable, Sendable {
    case red, green, blue, yellow, orange, purple, pink, cyan, white, black, gray

    /// Nominal sRGB value (0...255); the renderer jitters it, the checker maps back to the nearest.
    public var rgb: SIMD3<Float> {
        switch self {
        case .red: [215, 40, 40]
        case .green: [40, 170, 60]
        case .blue: [40, 80, 225]
        case .yellow: [240, 215, 40]
        case .orange: [245, 135, 20]
        case .purple: [135, 55, 185]
        case .pink: [250, 140, 200]
        case .cyan: [40, 205, 220]
        case .white: [245, 245, 245]
        case .black: [20, 20, 20]
        case .gray: [128, 128, 128]
        }
    }

    /// The palette colour nearest to `c` (Euclidean in RGB).
    public static func nearest(to c: SIMD3<Float>) -> ShapeColor {
        allCases.min { distance($0.rgb, c) < distance($1.rgb, c) }!
    }
}

@inline(__always) func distance(_ a: SIMD3<Float>, _ b: SIMD3<Float>) -> Float {
    let d = a - b
    return (d * d).sum().squareRoot()
}

public enum ShapeKind: String, CaseIterable, Codable, Sendable {
    case circle, square, triangle
    public var plural: String { rawValue + "s" }
}

public enum ShapeSize: String, CaseIterable, Codable, Sendable { case small, large }

public enum Placement: String, CaseIterable, Codable, Sendable {
    case topLeft = "top left", topRight = "top right", bottomLeft = "bottom left", bottomRight = "bottom right", center
}

public enum Relation: String, CaseIterable, Codable, Sendable {
    case leftOf = "on the left of", rightOf = "on the right of", above, below
}

public enum Task: String, CaseIterable, Codable, Sendable {
    case single, twoObjects = "two_objects", counting, position
}

/// Words for 1...4 in counting prompts.
public let countWords = ["one", "two", "three", "four"]
