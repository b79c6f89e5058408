@testable import CLIP
import Foundation
import Tensor
import Testing

/// Issue 12 item 1: canonical ordering of runs of combining marks - exactly Unicode's (a stable sort by
/// combining class), and in linear work however long the run - and the stream-safe bound servers apply.
@Suite("Canonical ordering and stream-safe runs")
struct CanonicalCompositionTests {
    static func hex(_ scalars: some Sequence<Unicode.Scalar>) -> String {
        scalars.map { String(format: "%04X", $0.value) }.joined(separator: " ")
    }

    static func nfc(_ text: String) -> [Unicode.Scalar] { CanonicalComposition.nfc(Array(text.unicodeScalars)[...]) }

    static func classes(_ scalars: [Unicode.Scalar]) -> [UInt8] {
        scalars.map { $0.value < 0x300 ? 0 : $0.properties.canonicalCombiningClass.rawValue }
    }

    /// Mixed-class runs with known NFC forms (NormalizationTest.txt's part 0 cases and their kind; the
    /// expected columns checked with Python's `unicodedata.normalize("NFC", ...)`).
    @Test(arguments: [
        ("\u{1E0A}\u{323}", "\u{1E0C}\u{307}"),  // D-dot-above + dot below: reordered across the decomposition
        ("D\u{307}\u{323}", "\u{1E0C}\u{307}"),
        ("\u{1E0A}\u{31B}", "\u{1E0A}\u{31B}"),  // horn (216) stays first; the dot above composes past it
        ("\u{1E0C}\u{31B}", "\u{1E0C}\u{31B}"),
        ("\u{1E0A}\u{31B}\u{323}", "\u{1E0C}\u{31B}\u{307}"),
        ("E\u{300}\u{304}", "\u{C8}\u{304}"),  // equal classes keep their order: the second is blocked
        ("a\u{301}\u{316}", "\u{E1}\u{316}"),
        ("u\u{308}\u{301}", "\u{1D8}"),
        ("u\u{301}\u{308}", "\u{FA}\u{308}"),
        ("a\u{302}\u{323}", "\u{1EAD}"),
        ("o\u{31B}\u{323}\u{301}", "\u{1EE3}\u{301}"),
        ("a\u{344}", "\u{E4}\u{301}"),  // U+0344 decomposes to two marks
        ("\u{5B8}\u{5B9}\u{5B1}\u{591}\u{5C3}\u{5B0}\u{5AC}\u{59F}", "\u{5B1}\u{5B8}\u{5B9}\u{591}\u{5C3}\u{5B0}\u{5AC}\u{59F}"),
        ("\u{592}\u{5B7}\u{5BC}\u{5A5}\u{5B0}\u{5C0}\u{5C4}\u{5AD}", "\u{5B0}\u{5B7}\u{5BC}\u{5A5}\u{592}\u{5C0}\u{5AD}\u{5C4}"),
    ])
    func knownMixedClassRuns(_ input: String, _ expected: String) {
        let got = Self.nfc(input)
        #expect(got == Array(expected.unicodeScalars), "NFC(\(Self.hex(input.unicodeScalars))) = \(Self.hex(got)), expected \(Self.hex(expected.unicodeScalars))")
    }

    /// Random runs of marks of many classes (and precomposed letters, and several starters) against
    /// Foundation's NFC. Every scalar is of Unicode 9.0 (where `tokenizers`' data and Foundation's agree),
    /// on the BMP and outside the sequences Foundation is known to get wrong (astral scalars, U+0F73-like
    /// decompositions, U+0CCA + U+0CD5). Runs up to 40 marks exercise both of `reorder`'s sorts.
    @Test func randomMarkRunsAgreeWithFoundation() throws {
        let starters: [Unicode.Scalar] = ["a", "e", "o", "u", "s", "A", "O", "\u{3B1}", "\u{3C9}", "\u{5D0}", "\u{627}", "\u{915}",
                                          "\u{304B}", "\u{E01}", "\u{F40}", "\u{E9}", "\u{1D6}", "\u{1E69}", "\u{1F80}", "\u{958}"]
        let marks: [Unicode.Scalar] = ["\u{300}", "\u{301}", "\u{302}", "\u{303}", "\u{304}", "\u{306}", "\u{307}", "\u{308}", "\u{30A}",
                                       "\u{30C}", "\u{31B}", "\u{316}", "\u{323}", "\u{327}", "\u{328}", "\u{331}", "\u{334}", "\u{345}",
                                       "\u{35C}", "\u{35D}", "\u{5B0}", "\u{5B7}", "\u{5BC}", "\u{591}", "\u{64B}", "\u{651}", "\u{670}",
                                       "\u{93C}", "\u{94D}", "\u{3099}", "\u{1DCE}", "\u{20D2}", "\u{302A}", "\u{302B}", "\u{E38}",
                                       "\u{E48}", "\u{F71}", "\u{F72}"]
        for s in starters + marks { try #require(CanonicalComposition.known(s), "U+\(String(format: "%04X", s.value)) is not in Unicode 9.0") }
        #expect(Set(Self.classes(marks)).count >= 20, "the marks cover many classes")
        let g = TorchGenerator(seed: 12)
        func pick<T>(_ from: [T]) -> T { from[Int(g.random() % UInt32(from.count))] }
        var mismatches = 0
        for _ in 0..<3000 {
            var text = String.UnicodeScalarView()
            for _ in 0...Int(g.random() % 3) {
                text.append(pick(starters))
                for _ in 0..<Int(g.random() % 41) { text.append(pick(marks)) }
            }
            let ours = CanonicalComposition.nfc(Array(text)[...])
            let foundation = Array(String(text).precomposedStringWithCanonicalMapping.unicodeScalars)
            if ours != foundation {
                mismatches += 1
                if mismatches <= 3 { Issue.record("NFC(\(Self.hex(text))): ours \(Self.hex(ours)), Foundation \(Self.hex(foundation))") }
            }
        }
        #expect(mismatches == 0, "\(mismatches) of 3000 sequences differ from Foundation")
    }

    /// Stability: equal classes keep their order, against Swift's sort on (class, position).
    @Test func reorderIsAStableSortByClass() {
        let marks: [Unicode.Scalar] = ["\u{301}", "\u{300}", "\u{316}", "\u{323}", "\u{327}", "\u{345}", "\u{35C}", "\u{5B0}", "\u{334}"]
        let g = TorchGenerator(seed: 3)
        for _ in 0..<200 {
            let run = (0..<(2 + Int(g.random() % 60))).map { _ in marks[Int(g.random() % UInt32(marks.count))] }
            var scalars: [Unicode.Scalar] = ["b"] + run
            var classes = Self.classes(scalars)
            let expected: [Unicode.Scalar] = ["b"] + run.enumerated().sorted {
                let a = $0.element.properties.canonicalCombiningClass.rawValue, b = $1.element.properties.canonicalCombiningClass.rawValue
                return a != b ? a < b : $0.offset < $1.offset
            }.map(\.element)
            CanonicalComposition.reorder(&scalars, &classes)
            #expect(scalars == expected, "\(Self.hex(run))")
            #expect(classes == Self.classes(expected))
        }
    }

    /// The issue's input, "a" + k U+0301 (class 230) + k U+0316 (220), at k = 150,000 (47.6 s with the
    /// insertion sort) and 4k: element moves stay within twice the text (an insertion sort moves k^2 here),
    /// and the result is right at both sizes. No clock: the moves are counted.
    @Test func theIssuesRunInLinearWork() throws {
        for k in [2_000, 150_000, 600_000] {
            var scalars: [Unicode.Scalar] = ["a"] + Array(repeating: "\u{301}", count: k) + Array(repeating: "\u{316}", count: k)
            var classes = Self.classes(scalars)
            let moves = CanonicalComposition.reorder(&scalars, &classes)
            // Checked before the next, 4x longer, run: a quadratic sort fails here instead of running for minutes.
            try #require(moves <= 2 * scalars.count, "k \(k): \(moves) element moves for a run of \(2 * k)")
            #expect(scalars == ["a"] + Array(repeating: "\u{316}", count: k) + Array(repeating: "\u{301}", count: k), "k \(k)")
            // NFC composes a + U+0301 across the lower-class marks (not blocked: 220 < 230).
            let composed = Self.nfc("a" + String(repeating: "\u{301}", count: k) + String(repeating: "\u{316}", count: k))
            #expect(composed.count == 2 * k && composed.first == "\u{E1}", "k \(k)")
            #expect(composed[1...k].allSatisfy { $0 == "\u{316}" } && composed[(k + 1)...].allSatisfy { $0 == "\u{301}" }, "k \(k)")
        }
    }

    // MARK: - StreamSafeText

    static func run(_ text: String) -> StreamSafeText.Run? { StreamSafeText.firstRun(in: text.unicodeScalars) }

    @Test func streamSafeBoundIsThirtyNonStarters() {
        let acute = "\u{301}"
        #expect(Self.run("a" + String(repeating: acute, count: 30)) == nil)
        #expect(Self.run("a" + String(repeating: acute, count: 31)) == StreamSafeText.Run(start: 1, length: 31))
        #expect(Self.run(String(repeating: acute, count: 31)) == StreamSafeText.Run(start: 0, length: 31))
        // A starter ends a run; runs are measured whole, and the first too long one is reported.
        let ok = "a" + String(repeating: acute, count: 30)
        #expect(Self.run(ok + ok + " " + ok) == nil)
        #expect(Self.run(ok + "b" + String(repeating: "\u{316}", count: 45) + "c" + String(repeating: acute, count: 50))
                == StreamSafeText.Run(start: 32, length: 45))
        // Hangul syllables decompose to starters (jamo).
        #expect(Self.run("\u{AC01}" + String(repeating: acute, count: 30)) == nil)
        // Linear: the issue's 300,000-mark run is measured whole.
        #expect(Self.run("a" + String(repeating: acute, count: 150_000) + String(repeating: "\u{316}", count: 150_000))
                == StreamSafeText.Run(start: 1, length: 300_000))
    }

    /// Non-starters are counted on the canonical decomposition, as the normalizer sees them.
    @Test func streamSafeCountsTheDecomposition() {
        // U+00C0 = A + U+0300: its trailing mark starts the run.
        #expect(Self.run("\u{C0}" + String(repeating: "\u{301}", count: 30)) == StreamSafeText.Run(start: 0, length: 31))
        #expect(Self.run("A" + String(repeating: "\u{301}", count: 30)) == nil)
        // U+0F73 is a starter by its own class but decomposes to two marks (U+0F71 U+0F72).
        #expect(Self.run("a" + String(repeating: "\u{F73}", count: 15)) == nil)
        #expect(Self.run("a" + String(repeating: "\u{F73}", count: 16)) == StreamSafeText.Run(start: 1, length: 32))
        // U+0344 decomposes to U+0308 U+0301.
        #expect(Self.run("a" + String(repeating: "\u{344}", count: 16)) == StreamSafeText.Run(start: 1, length: 32))
        // A mark of Unicode 10 (U+1DF9, class 220) counts though the Unicode 9.0 tables do not know it.
        #expect(Self.run("a" + String(repeating: "\u{1DF9}", count: 31)) == StreamSafeText.Run(start: 1, length: 31))
    }
}
