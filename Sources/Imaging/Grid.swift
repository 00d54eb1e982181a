/// One row of an image grid: a caption strip above the images, optional labels under each.
public struct GridRow {
    public var caption: String
    public var images: [RGBImage]
    public var labels: [String]?
    public init(caption: String, images: [RGBImage], labels: [String]? = nil) {
        self.caption = caption; self.images = images; self.labels = labels
    }
}

/// Composes rows of images into one picture: thin gray borders, each image upscaled by `scale`
/// (nearest neighbour, so pixels stay visible), a caption strip per row in the bitmap font,
/// and an optional title strip at the top.
public func composeGrid(rows: [GridRow], scale: Int = 3, title: String? = nil) -> RGBImage {
    let border = 2, pad = 3
    let line = BitmapFont.lineHeight
    let cellW = (rows.flatMap(\.images).map(\.width).max() ?? 1) * scale
    let cellH = (rows.flatMap(\.images).map(\.height).max() ?? 1) * scale
    let maxCols = rows.map(\.images.count).max() ?? 1
    let hasLabels = rows.contains { $0.labels != nil }
    let imagesW = maxCols * (cellW + border) + border
    let captionW = (rows.map { BitmapFont.width($0.caption) }.max() ?? 0) + 2 * pad
    let titleW = BitmapFont.width(title ?? "") + 2 * pad
    let width = max(imagesW, captionW, titleW)
    let rowH = line + cellH + 2 * border + (hasLabels ? line : 0)
    let titleH = title == nil ? 0 : line + 2 * pad
    var out = RGBImage(width: width, height: titleH + rows.count * rowH + border, fill: (255, 255, 255))
    if let title { out.drawText(title, x: pad, y: pad, color: (0, 0, 0)) }
    for (r, row) in rows.enumerated() {
        let y0 = titleH + r * rowH
        out.fillRect(x: 0, y: y0, width: width, height: line, (236, 236, 236))
        out.drawText(row.caption, x: pad, y: y0 + 1, color: (20, 20, 20))
        let iy = y0 + line + border
        out.fillRect(x: 0, y: iy - border, width: imagesW, height: cellH + 2 * border, (160, 160, 160))
        for (c, img) in row.images.enumerated() {
            let ix = border + c * (cellW + border)
            out.blit(img.scaled(by: scale), x: ix, y: iy)
            if let labels = row.labels, c < labels.count {
                let text = String(labels[c].prefix(max(1, (cellW + border) / BitmapFont.advance)))
                out.drawText(text, x: ix + 1, y: iy + cellH + border + 1, color: (40, 40, 40))
            }
        }
    }
    return out
}
