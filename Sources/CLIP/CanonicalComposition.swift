/// NFC as the `tokenizers` library computes it (the `unicode-normalization-alignments` crate), which carries
/// Unicode 9.0 data: a scalar assigned after 9.0 has neither a decomposition nor a combining class there
/// (so it is never reordered and never composed), where Swift's newer tables would move it. Also does
/// the canonical reordering across decomposed characters that Foundation's NFC skips for some sequences
/// (U+0F73 U+0F73 must become U+0F71 U+0F71 U+0F72 U+0F72).
///
/// The algorithm is the standard one (UAX #15): full canonical decomposition of each scalar, stable sort of
/// each run of non-starters by combining class, then canonical composition with blocking. Decompositions
/// and primary composites come from tables generated from `tokenizers` itself
/// (`CanonicalCompositionData.swift`; Foundation's NFC was found to compose wrongly after astral scalars
/// and to miss U+0CCA + U+0CD5), combining classes from Swift for scalars of Unicode 9.0 (classes of
/// assigned scalars never change), Hangul is arithmetic.
enum CanonicalComposition {
    /// The NFC form of `text` under Unicode 9.0 data.
    static func nfc(_ text: ArraySlice<Unicode.Scalar>) -> [Unicode.Scalar] {
        // Scalars below U+0300 have combining class 0 and compose with nothing that is also below U+0300:
        // decomposing then recomposing gives them back.
        if text.allSatisfy({ $0.value < 0x300 }) { return Array(text) }
        var decomposed: [Unicode.Scalar] = []
        decomposed.reserveCapacity(text.count + 8)
        for scalar in text { decompose(scalar, into: &decomposed) }
        var classes = decomposed.map(combiningClass)
        reorder(&decomposed, &classes)
        return compose(decomposed, classes)
    }

    private static let sBase: UInt32 = 0xAC00, lBase: UInt32 = 0x1100, vBase: UInt32 = 0x1161, tBase: UInt32 = 0x11A7
    private static let lCount: UInt32 = 19, vCount: UInt32 = 21, tCount: UInt32 = 28
    private static let nCount = vCount * tCount, sCount = lCount * nCount

    /// Whether `scalar` is assigned in Unicode 9.0 (the data of `tokenizers`' normalizer).
    @inline(__always)
    static func known(_ scalar: Unicode.Scalar) -> Bool {
        guard let age = scalar.properties.age else { return false }
        return age.major < 9 || (age.major == 9 && age.minor == 0)
    }

    /// Scalars with no canonical decomposition and combining class 0 that never compose as second
    /// element: CJK unified ideographs (not the compatibility ones), Hangul syllables are handled apart.
    @inline(__always)
    private static func isPlainIdeograph(_ v: UInt32) -> Bool {
        (0x3400...0x4DBF).contains(v) || (0x4E00...0x9FFF).contains(v) || (0x20000...0x2A6DF).contains(v)
            || (0x2A700...0x2F7FF).contains(v)
    }

    /// Appends the full canonical decomposition of `scalar` (Unicode 9.0, Hangul arithmetic) to `out`.
    static func decompose(_ scalar: Unicode.Scalar, into out: inout [Unicode.Scalar]) {
        let v = scalar.value
        if v < 0xC0 || isPlainIdeograph(v) { out.append(scalar); return }
        if v >= sBase && v < sBase + sCount {
            let s = v - sBase
            out.append(Unicode.Scalar(lBase + s / nCount)!)
            out.append(Unicode.Scalar(vBase + (s % nCount) / tCount)!)
            if s % tCount != 0 { out.append(Unicode.Scalar(tBase + s % tCount)!) }
            return
        }
        if let range = decompositions[v] {
            for i in range { out.append(Unicode.Scalar(decompositionData[i])!) }
        } else {
            out.append(scalar)
        }
    }

    /// Range in `decompositionData` of each decomposable scalar's decomposition.
    private static let decompositions: [UInt32: Range<Int>] = {
        var table = [UInt32: Range<Int>]()
        var i = 0
        while i < decompositionData.count {
            let count = Int(decompositionData[i + 1])
            table[decompositionData[i]] = (i + 2)..<(i + 2 + count)
            i += 2 + count
        }
        return table
    }()

    /// Primary composite of each pair, keyed `first << 32 | second`.
    private static let composites: [UInt64: UInt32] = {
        var table = [UInt64: UInt32]()
        for i in stride(from: 0, to: compositionData.count, by: 3) {
            table[UInt64(compositionData[i]) << 32 | UInt64(compositionData[i + 1])] = compositionData[i + 2]
        }
        return table
    }()

    @inline(__always)
    private static func combiningClass(_ scalar: Unicode.Scalar) -> UInt8 {
        if scalar.value < 0x300 { return 0 }
        return known(scalar) ? scalar.properties.canonicalCombiningClass.rawValue : 0
    }

    /// Canonical ordering: a stable sort of each run of non-starters by combining class. Returns the
    /// elements moved (a measure of the work, for tests). Runs longer than a few marks are counting-sorted
    /// (O(n + 256), stable): an insertion sort is quadratic, and a prompt of one letter and 10^5 marks
    /// of two alternating classes took seconds. Both sorts are stable, so the order is the same.
    @discardableResult
    static func reorder(_ scalars: inout [Unicode.Scalar], _ classes: inout [UInt8]) -> Int {
        var i = 0, moves = 0
        let n = scalars.count
        while i < n {
            guard classes[i] != 0 else { i += 1; continue }
            var end = i + 1
            while end < n && classes[end] != 0 { end += 1 }
            if end - i > 8 {
                moves += countingSort(&scalars, &classes, i..<end)
            } else if end - i > 1 {
                for j in (i + 1)..<end {
                    let s = scalars[j], c = classes[j]
                    var k = j
                    while k > i && classes[k - 1] > c {
                        scalars[k] = scalars[k - 1]; classes[k] = classes[k - 1]; k -= 1
                        moves += 1
                    }
                    scalars[k] = s; classes[k] = c
                }
            }
            i = end
        }
        return moves
    }

    /// Stable counting sort of `range` by class (classes are one byte). Returns the elements written.
    private static func countingSort(_ scalars: inout [Unicode.Scalar], _ classes: inout [UInt8], _ range: Range<Int>) -> Int {
        var starts = [Int](repeating: 0, count: 257)
        for i in range { starts[Int(classes[i]) + 1] += 1 }
        for c in 1...256 { starts[c] += starts[c - 1] }
        let run = Array(scalars[range]), runClasses = Array(classes[range])
        for (s, c) in zip(run, runClasses) {
            let at = range.lowerBound + starts[Int(c)]
            scalars[at] = s
            classes[at] = c
            starts[Int(c)] += 1
        }
        return range.count
    }

    /// The primary composite of `first` + `second`, if Unicode 9.0 has one that is not excluded.
    private static func composite(_ first: Unicode.Scalar, _ second: Unicode.Scalar) -> Unicode.Scalar? {
        let a = first.value, b = second.value
        if a >= lBase && a < lBase + lCount && b >= vBase && b < vBase + vCount {
            return Unicode.Scalar(sBase + ((a - lBase) * vCount + (b - vBase)) * tCount)
        }
        if a >= sBase && a < sBase + sCount && (a - sBase) % tCount == 0 && b > tBase && b < tBase + tCount {
            return Unicode.Scalar(a + (b - tBase))
        }
        return composites[UInt64(a) << 32 | UInt64(b)].flatMap(Unicode.Scalar.init)
    }

    /// Canonical composition (UAX #15 D117): each scalar joins the last starter unless blocked.
    private static func compose(_ scalars: [Unicode.Scalar], _ classes: [UInt8]) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(scalars.count)
        var starter = -1  // index in `out` of the last starter
        var lastClass: UInt8 = 0  // class of the last scalar appended after the starter (0: none yet)
        var adjacent = true  // nothing appended since the starter
        for (scalar, cc) in zip(scalars, classes) {
            if starter >= 0 && (adjacent || (lastClass != 0 && lastClass < cc)),
               let c = composite(out[starter], scalar) {
                out[starter] = c
                continue
            }
            if cc == 0 {
                starter = out.count
                lastClass = 0
                adjacent = true
            } else {
                lastClass = cc
                adjacent = false
            }
            out.append(scalar)
        }
        return out
    }
}
