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
/// (nearest neighbour, so pixels stay visible), a caption per row in the bitmap font (a strip
/// above the row, or with `captionsLeft` a column at its left), and an optional title strip.
public func composeGrid(rows: [GridRow], scale: Int = 3, title: String? = nil, captionsLeft: Bool = false) -> RGBImage {
    let border = 2, pad = 3
    let line = BitmapFont.lineHeight
    let cellW = (rows.flatMap(\.images).map(\.width).max() ?? 1) * scale
    let cellH = (rows.flatMap(\.images).map(\.height).max() ?? 1) * scale
    let maxCols = rows.map(\.images.count).max() ?? 1
    let hasLabels = rows.contains { $0.labels != nil }
    let captionW = (rows.map { BitmapFont.width($0.caption) }.max() ?? 0) + 2 * pad
    let imagesX = captionsLeft ? captionW : 0
    let imagesW = maxCols * (cellW + border) + border
    let titleW = BitmapFont.width(title ?? "") + 2 * pad
    let width = captionsLeft ? max(imagesX + imagesW, titleW) : max(imagesW, captionW, titleW)
    let captionH = captionsLeft ? 0 : line
    let rowH = captionH + cellH + 2 * border + (hasLabels ? line : 0)
    let titleH = title == nil ? 0 : line + 2 * pad
    var out = RGBImage(width: width, height: titleH + rows.count * rowH + border, fill: (255, 255, 255))
    if let title { out.drawText(title, x: pad, y: pad, color: (0, 0, 0)) }
    for (r, row) in rows.enumerated() {
        let y0 = titleH + r * rowH
        if captionsLeft {
            out.fillRect(x: 0, y: y0, width: captionW, height: rowH, (236, 236, 236))
            out.drawText(row.caption, x: pad, y: y0 + (cellH + 2 * border - line) / 2 + 1, color: (20, 20, 20))
        } else {
            out.fillRect(x: 0, y: y0, width: width, height: line, (236, 236, 236))
            out.drawText(row.caption, x: pad, y: y0 + 1, color: (20, 20, 20))
        }
        let iy = y0 + captionH + border
        out.fillRect(x: imagesX, y: iy - border, width: imagesW, height: cellH + 2 * border, (160, 160, 160))
        for (c, img) in row.images.enumerated() {
            let ix = imagesX + border + c * (cellW + border)
            out.blit(img.scaled(by: scale), x: ix, y: iy)
            if let labels = row.labels, c < labels.count {
                let text = String(labels[c].prefix(max(1, (cellW + border) / BitmapFont.advance)))
                out.drawText(text, x: ix + 1, y: iy + cellH + border + 1, color: (40, 40, 40))
            }
        }
    }
    return out
}

/// The images of a plain tiled picture (no borders, no captions): `rows` x `columns` tiles of
/// `tile` x `tile` pixels, row-major. What a run keeps of each evaluation to draw its strips.
public func tiles(of image: RGBImage, tile: Int) -> [[RGBImage]] {
    guard tile > 0 else { return [] }
    return (0..<(image.height / tile)).map { r in
        (0..<(image.width / tile)).map { c in image.cropped(x: c * tile, y: r * tile, width: tile, height: tile) }
    }
}

/// The inverse of `tiles`: rows of equal-size images side by side, rows stacked.
public func tiled(_ rows: [[RGBImage]]) -> RGBImage {
    let w = rows.first?.first?.width ?? 0, h = rows.first?.first?.height ?? 0
    var out = RGBImage(width: w * (rows.map(\.count).max() ?? 0), height: h * rows.count)
    for (r, row) in rows.enumerated() { for (c, img) in row.enumerated() { out.blit(img, x: c * w, y: r * h) } }
    return out
}
