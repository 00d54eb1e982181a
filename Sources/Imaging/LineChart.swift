import Foundation

/// A line chart rendered to an image: several series, axes with ticks and numbers, a legend,
/// optional vertical markers (e.g. the onset of over-optimisation). Ticks fall on round values
/// (1, 2 or 5 times a power of ten) labelled with as many decimals as their spacing needs.
public struct LineChart {
    public struct Series {
        public var name: String
        public var points: [(x: Double, y: Double)]
        public var color: (UInt8, UInt8, UInt8)
        public init(name: String, points: [(x: Double, y: Double)], color: (UInt8, UInt8, UInt8)) {
            self.name = name; self.points = points; self.color = color
        }
    }
    public struct Marker {
        public var x: Double
        public var label: String
        public var color: (UInt8, UInt8, UInt8)
        public init(x: Double, label: String, color: (UInt8, UInt8, UInt8) = (200, 0, 0)) { self.x = x; self.label = label; self.color = color }
    }

    /// Points drawn as dots without lines (e.g. every run of a sweep under its front).
    public struct Scatter {
        public var points: [(x: Double, y: Double)]
        public var color: (UInt8, UInt8, UInt8)
        public init(points: [(x: Double, y: Double)], color: (UInt8, UInt8, UInt8)) { self.points = points; self.color = color }
    }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var series: [Series] = []
    public var markers: [Marker] = []
    public var scatter: [Scatter] = []
    public var legend: Bool?             // nil: a legend when there is more than one series (a series without a name has no row)
    public var width = 640, height = 360

    public init(title: String, xLabel: String, yLabel: String) {
        self.title = title; self.xLabel = xLabel; self.yLabel = yLabel
    }

    /// A palette of distinguishable colours for series.
    public static let palette: [(UInt8, UInt8, UInt8)] = [
        (31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189),
        (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
    ]

    public func render() -> RGBImage {
        var img = RGBImage(width: width, height: height, fill: (255, 255, 255))
        let named = series.filter { !$0.name.isEmpty }
        let legendRows = (legend ?? (series.count > 1)) ? named.count : 0
        let left = 58, right = 12, top = 22 + (yLabel.isEmpty ? 0 : BitmapFont.lineHeight), bottom = 34 + legendRows * BitmapFont.lineHeight
        let pw = width - left - right, ph = height - top - bottom
        img.drawText(title, x: left, y: 6, color: (0, 0, 0))
        let allX = series.flatMap { $0.points.map(\.x) } + scatter.flatMap { $0.points.map(\.x) } + markers.map(\.x)
        let x0 = allX.min() ?? 0
        var x1 = allX.max() ?? 1
        if x1 <= x0 { x1 = x0 + 1 }
        let finite = (series.flatMap { $0.points.map(\.y) } + scatter.flatMap { $0.points.map(\.y) }).filter(\.isFinite)
        var y0 = finite.min() ?? 0, y1 = finite.max() ?? 1
        if y1 <= y0 { y0 -= 0.5; y1 += 0.5 }
        let pad = (y1 - y0) * 0.05
        y0 -= pad; y1 += pad
        func px(_ x: Double) -> Int { left + Int(((x - x0) / (x1 - x0) * Double(pw - 1)).rounded()) }
        func py(_ y: Double) -> Int { top + ph - 1 - Int(((y - y0) / (y1 - y0) * Double(ph - 1)).rounded()) }
        // grid and ticks
        let yTicks = niceTicks(y0, y1)
        for y in yTicks.values {
            let yy = py(y)
            img.drawLine(left, yy, left + pw - 1, yy, (232, 232, 232))
            let label = formatTick(y, decimals: yTicks.decimals)
            img.drawText(label, x: max(0, left - 4 - BitmapFont.width(label)), y: yy - 3, color: (60, 60, 60))
        }
        let xTicks = niceTicks(x0, x1)
        for x in xTicks.values {
            let xx = px(x)
            img.drawLine(xx, top, xx, top + ph - 1, (232, 232, 232))
            let xl = formatTick(x, decimals: xTicks.decimals)
            img.drawText(xl, x: max(0, min(xx - BitmapFont.width(xl) / 2, width - BitmapFont.width(xl) - 1)), y: top + ph + 4, color: (60, 60, 60))
        }
        img.drawLine(left, top, left, top + ph - 1, (0, 0, 0))
        img.drawLine(left, top + ph - 1, left + pw - 1, top + ph - 1, (0, 0, 0))
        img.drawText(xLabel, x: left + pw / 2 - BitmapFont.width(xLabel) / 2, y: top + ph + 14, color: (0, 0, 0))
        img.drawText(yLabel, x: 2, y: 6 + BitmapFont.lineHeight, color: (90, 90, 90))
        for (i, m) in markers.enumerated() {
            let xx = px(m.x)
            var y = top
            while y < top + ph { img.drawLine(xx, y, xx, min(y + 3, top + ph - 1), m.color); y += 6 }
            img.drawText(m.label, x: min(xx + 3, width - BitmapFont.width(m.label) - 1), y: top + 2 + i * BitmapFont.lineHeight, color: m.color)
        }
        // dots (light: a hollow square), then series
        for sc in scatter {
            let light = (UInt8((Int(sc.color.0) + 2 * 255) / 3), UInt8((Int(sc.color.1) + 2 * 255) / 3), UInt8((Int(sc.color.2) + 2 * 255) / 3))
            for p in sc.points where p.y.isFinite && p.x.isFinite {
                let (x, y) = (px(p.x), py(p.y))
                img.fillRect(x: x - 2, y: y - 2, width: 5, height: 5, sc.color)
                img.fillRect(x: x - 1, y: y - 1, width: 3, height: 3, light)
            }
        }
        for s in series {
            var prev: (Int, Int)?
            for p in s.points {
                guard p.y.isFinite else { prev = nil; continue }
                let cur = (px(p.x), py(p.y))
                if let prev { img.drawLine(prev.0, prev.1, cur.0, cur.1, s.color, thickness: 2) }
                img.fillRect(x: cur.0 - 1, y: cur.1 - 1, width: 3, height: 3, s.color)
                prev = cur
            }
        }
        // legend
        for (i, s) in named.enumerated() where legendRows > 0 {
            let y = height - bottom + 26 + i * BitmapFont.lineHeight
            img.fillRect(x: left, y: y + 2, width: 14, height: 3, s.color)
            img.drawText(s.name, x: left + 20, y: y, color: (0, 0, 0))
        }
        return img
    }
}

/// Round tick values inside [lo, hi]: multiples of 1, 2 or 5 times a power of ten, about
/// `target` of them, and the decimals that label them exactly.
func niceTicks(_ lo: Double, _ hi: Double, target: Int = 5) -> (values: [Double], decimals: Int) {
    guard hi > lo, lo.isFinite, hi.isFinite else { return ([lo], 2) }
    let raw = (hi - lo) / Double(max(1, target))
    let magnitude = pow(10, (log10(raw)).rounded(.down))
    let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
    var values: [Double] = []
    var v = (lo / step - 1e-9).rounded(.up) * step
    while v <= hi + step * 1e-9 { values.append(abs(v) < step * 1e-9 ? 0 : v); v += step }
    return (values, max(0, -Int(log10(step).rounded(.down))))
}

/// A tick label of at most 7 characters: 12500 as "12.5k", 2000000 as "2M"; below that with
/// `decimals` decimals (the ticks' spacing), or, given none, a short form (0.004 as "4.0e-03").
func formatTick(_ v: Double, decimals: Int? = nil) -> String {
    let a = abs(v)
    for (scale, suffix) in [(1e9, "G"), (1e6, "M"), (1e4, "k")] where a >= scale {
        let unit = scale == 1e4 ? 1e3 : scale
        var s = String(format: "%.1f", v / unit)
        if s.hasSuffix(".0") { s.removeLast(2) }
        return s + suffix
    }
    if let d = decimals {
        if d > 4 && a > 0 { return String(format: "%.*e", max(0, d + Int(log10(a).rounded(.down))), v) }
        return String(format: "%.*f", d, v)
    }
    if a > 0 && a < 0.01 { return String(format: "%.1e", v) }
    if a >= 100 { return String(format: "%.0f", v) }
    if a >= 10 { return String(format: "%.1f", v) }
    return String(format: "%.2f", v)
}

extension RGBImage {
    /// Bresenham line, `thickness` pixels wide.
    public mutating func drawLine(_ x0: Int, _ y0: Int, _ x1: Int, _ y1: Int, _ c: (UInt8, UInt8, UInt8), thickness: Int = 1) {
        var x = x0, y = y0
        let dx = abs(x1 - x0), dy = -abs(y1 - y0)
        let sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1
        var err = dx + dy
        while true {
            fillRect(x: x - (thickness - 1) / 2, y: y - (thickness - 1) / 2, width: thickness, height: thickness, c)
            if x == x1 && y == y1 { break }
            let e2 = 2 * err
            if e2 >= dy { err += dy; x += sx }
            if e2 <= dx { err += dx; y += sy }
        }
    }
}


/// Small multiples: charts rendered on a white sheet, `top` (if any) across the full width, the
/// panels below it `columns` to a row.
public func smallMultiples(top: RGBImage?, panels: [RGBImage], columns: Int) -> RGBImage {
    let cols = max(1, columns)
    let cellW = panels.map(\.width).max() ?? 0, cellH = panels.map(\.height).max() ?? 0
    let rows = (panels.count + cols - 1) / cols
    let topH = top?.height ?? 0
    var out = RGBImage(width: max(top?.width ?? 0, cols * cellW), height: topH + rows * cellH, fill: (255, 255, 255))
    if let top { out.blit(top, x: 0, y: 0) }
    for (i, p) in panels.enumerated() { out.blit(p, x: (i % cols) * cellW, y: topH + (i / cols) * cellH) }
    return out
}
