import Tensor

/// Judges a picture of the demo model's grammar by its pixels (no model involved): the background colour
/// from the border, the object as the pixels far from it, the object's colour by vote, its shape from the
/// fill ratio of its bounding box and a hole at the box's centre, its position from the centroid.
/// The palette and geometry are those of `scripts/demo_model/scenes.py`.
struct SceneClassifier {
    static let colours: [(name: String, rgb: SIMD3<Float>)] = [
        ("red", [220, 40, 40]), ("orange", [245, 140, 30]), ("yellow", [245, 220, 40]), ("green", [40, 170, 70]),
        ("blue", [40, 80, 220]), ("purple", [140, 60, 190]), ("pink", [245, 150, 200]), ("white", [245, 245, 245]),
        ("black", [20, 20, 20]), ("gray", [128, 128, 128]),
    ]
    static let shapes = ["circle", "square", "triangle", "ring"]
    static let sizes = ["small", "medium", "large"]
    static let positions = ["center", "left", "right", "top", "bottom"]
    static let positionWords = ["center": "", "left": " on the left", "right": " on the right", "top": " at the top", "bottom": " at the bottom"]

    /// A scene of the grammar and its canonical caption.
    struct Scene: Equatable, CustomStringConvertible {
        var shape: String, colour: String, background: String, size: String, position: String

        var caption: String {
            let size = self.size == "medium" ? "" : "\(self.size) "
            return "a \(size)\(colour) \(shape)\(SceneClassifier.positionWords[position]!) on a \(background) background"
        }
        var description: String { caption }
    }

    /// What the pixels show; nil where no object was found.
    struct Verdict {
        var background: String
        var colour: String?
        var shape: String?
        var position: String?
    }

    /// `count` scenes drawn from the grammar by a fixed-seed SplitMix64 (nothing here is in the training script).
    static func scenes(count: Int, seed: UInt64) -> [Scene] {
        var g = SplitMix(seed: seed)
        func next(_ n: Int) -> Int { Int(g.next() % UInt64(n)) }
        return (0..<count).map { _ in
            let colour = colours[next(colours.count)].name
            let others = colours.map(\.name).filter { $0 != colour }
            return Scene(shape: shapes[next(shapes.count)], colour: colour, background: others[next(others.count)],
                         size: sizes[next(sizes.count)], position: positions[next(positions.count)])
        }
    }

    /// The palette colour nearest to `rgb` (0...255) and its distance.
    static func nearest(_ rgb: SIMD3<Float>) -> (index: Int, distance: Float) {
        var best = (0, Float.infinity)
        for (i, c) in colours.enumerated() {
            let d = ((rgb - c.rgb) * (rgb - c.rgb)).sum().squareRoot()
            if d < best.1 { best = (i, d) }
        }
        return best
    }

    /// image: [H, W, 3] in [0, 1] (one image of the pipeline's NHWC output).
    static func classify(_ image: Tensor) -> Verdict {
        let h = image.shape[0], w = image.shape[1]
        func pixel(_ y: Int, _ x: Int) -> SIMD3<Float> {
            let i = (y * w + x) * 3
            return SIMD3(image[flat: i], image[flat: i + 1], image[flat: i + 2]).clamped(lowerBound: .zero, upperBound: .one) * 255
        }
        // Background: the commonest palette colour along a 2-pixel border.
        var votes = [Int](repeating: 0, count: colours.count)
        for y in 0..<h {
            for x in 0..<w where y < 2 || y >= h - 2 || x < 2 || x >= w - 2 {
                votes[nearest(pixel(y, x)).index] += 1
            }
        }
        let background = votes.indices.max { votes[$0] < votes[$1] }!
        let backgroundRGB = colours[background].rgb

        // Object: pixels farther from the background than half the closest pair of palette colours (~80 levels).
        var mask = [Bool](repeating: false, count: h * w)
        var objectVotes = [Int](repeating: 0, count: colours.count)
        var area = 0, sumX = 0.0, sumY = 0.0
        var minX = w, maxX = -1, minY = h, maxY = -1
        for y in 0..<h {
            for x in 0..<w {
                let p = pixel(y, x)
                guard ((p - backgroundRGB) * (p - backgroundRGB)).sum().squareRoot() > 40 else { continue }
                mask[y * w + x] = true
                let n = nearest(p)
                if n.index != background { objectVotes[n.index] += 1 }
                area += 1
                sumX += Double(x) + 0.5
                sumY += Double(y) + 0.5
                minX = min(minX, x); maxX = max(maxX, x); minY = min(minY, y); maxY = max(maxY, y)
            }
        }
        // Fewer pixels than a tenth of the smallest object (a small circle covers 4.5% of the image): nothing drawn.
        guard area > h * w / 250 else { return Verdict(background: colours[background].name) }
        let colour = objectVotes.indices.max { objectVotes[$0] < objectVotes[$1] }!

        // Shape: fill ratio of the bounding box (square 1, circle 0.785, ring 0.589, triangle 0.5) and a hole
        // (a ring's hole spans half its diameter; the middle eighth of the box is background only for a ring).
        let boxW = maxX - minX + 1, boxH = maxY - minY + 1
        let fill = Double(area) / Double(boxW * boxH)
        let cx = minX + boxW / 2, cy = minY + boxH / 2, r = max(1, min(boxW, boxH) / 16)
        var inside = 0, total = 0
        for y in max(0, cy - r)..<min(h, cy + r + 1) {
            for x in max(0, cx - r)..<min(w, cx + r + 1) {
                total += 1
                if mask[y * w + x] { inside += 1 }
            }
        }
        let shape: String
        if inside * 2 < total {
            shape = "ring"
        } else if fill > 0.9 {
            shape = "square"
        } else if fill > 0.66 {
            shape = "circle"
        } else {
            shape = "triangle"
        }

        // Position: the centroid's offset from the image centre, in image sides.
        let dx = sumX / Double(area) / Double(w) - 0.5, dy = sumY / Double(area) / Double(h) - 0.5
        let position: String
        if max(abs(dx), abs(dy)) < 0.12 {
            position = "center"
        } else if abs(dx) > abs(dy) {
            position = dx < 0 ? "left" : "right"
        } else {
            position = dy < 0 ? "top" : "bottom"
        }
        return Verdict(background: colours[background].name, colour: colours[colour].name, shape: shape, position: position)
    }
}
