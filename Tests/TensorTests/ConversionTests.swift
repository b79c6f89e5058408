import Foundation
import Testing
import Tensor

/// The vectorised half-precision conversions against scalar references, on every bit pattern of the 16-bit
/// formats (tolerance: bit-exact; NaN only has to stay NaN). The scalar references are Swift's own
/// `Float(Float16)` / `Float16(Float)` (compiler-rt's correctly rounded conversions) and the bfloat16 rules
/// of `c10/util/BFloat16.h`.
@Suite struct ConversionTests {
    static let allPatterns: [UInt16] = (0...UInt16.max).map { $0 }

    /// `c10::detail::round_to_nearest_even`.
    static func referenceBFloat16(_ f: Float) -> UInt16 {
        if f.isNaN { return 0x7FC0 }
        let u = f.bitPattern
        return UInt16(truncatingIfNeeded: (u &+ ((u >> 16) & 1) &+ 0x7FFF) >> 16)
    }

    /// Widens `halves` with `convert`, starting at a byte offset of 1 so that the loads are unaligned.
    static func widen(_ halves: [UInt16], _ convert: (UnsafeRawPointer, UnsafeMutablePointer<Float>, Int) -> Void) -> [Float] {
        var bytes = [UInt8](repeating: 0, count: halves.count * 2 + 1)
        for (i, h) in halves.enumerated() {
            bytes[1 + 2 * i] = UInt8(truncatingIfNeeded: h)
            bytes[2 + 2 * i] = UInt8(truncatingIfNeeded: h >> 8)
        }
        var out = [Float](repeating: 0, count: halves.count)
        bytes.withUnsafeBytes { raw in out.withUnsafeMutableBufferPointer { convert(raw.baseAddress! + 1, $0.baseAddress!, halves.count) } }
        return out
    }

    /// Narrows `floats` with `convert` into a buffer at a byte offset of 1.
    static func narrow(_ floats: [Float], _ convert: (UnsafePointer<Float>, UnsafeMutableRawPointer, Int) -> Void) -> [UInt16] {
        var bytes = [UInt8](repeating: 0, count: floats.count * 2 + 1)
        floats.withUnsafeBufferPointer { src in bytes.withUnsafeMutableBytes { convert(src.baseAddress!, $0.baseAddress! + 1, floats.count) } }
        return (0..<floats.count).map { UInt16(bytes[1 + 2 * $0]) | UInt16(bytes[2 + 2 * $0]) << 8 }
    }

    @Test func float16ToFloat32AllPatterns() {
        let got = Self.widen(Self.allPatterns, { Conversion.float16ToFloat32($0, $1, count: $2) })
        // Bit-exact, NaN payloads included.
        let mismatches = zip(Self.allPatterns, got).filter { h, f in f.bitPattern != Float(Float16(bitPattern: h)).bitPattern }.count
        print("float16ToFloat32: \(mismatches) of 65536 patterns differ from Float(Float16)")
        #expect(mismatches == 0)
    }

    @Test func bfloat16ToFloat32AllPatterns() {
        let got = Self.widen(Self.allPatterns, { Conversion.bfloat16ToFloat32($0, $1, count: $2) })
        let mismatches = zip(Self.allPatterns, got).filter { h, f in f.bitPattern != UInt32(h) << 16 }.count
        print("bfloat16ToFloat32: \(mismatches) of 65536 patterns differ from the shift")
        #expect(mismatches == 0)
    }

    /// Every float16 and bfloat16 value, the midpoints between neighbours (ties, which must go to even) and
    /// points just beside them, the overflow and underflow boundaries, and random bit patterns.
    static let narrowingInputs: [Float] = {
        var xs: [Float] = []
        for h in allPatterns {
            let f = Float(Float16(bitPattern: h))
            xs.append(f)
            if (h & 0x7FFF) < 0x7BFF {  // finite, and so is the next value away from zero
                let mid = (f + Float(Float16(bitPattern: h + 1))) / 2  // exact: float has 13 more bits
                xs += [mid, mid.nextUp, mid.nextDown]
            }
            let b = Float(bitPattern: UInt32(h) << 16)
            let bMid = Float(bitPattern: UInt32(h) << 16 | 0x8000)
            xs += [b, bMid, bMid.nextUp, bMid.nextDown]
        }
        xs += [65504, 65519.99, 65520, 65536, 1e10, .infinity, -.infinity, .nan, -.nan,
               .greatestFiniteMagnitude, .leastNonzeroMagnitude, .leastNormalMagnitude, 0x1p-24, 0x1p-25, 0x1.0001p-25, 0x1.8p-24]
        var g = SplitMix(seed: 7)
        for _ in 0..<200_000 { xs.append(Float(bitPattern: UInt32(truncatingIfNeeded: g.next()))) }
        return xs
    }()

    @Test func float32ToFloat16MatchesFloat16Init() {
        let xs = Self.narrowingInputs
        let got = Self.narrow(xs, { Conversion.float32ToFloat16($0, $1, count: $2) })
        var mismatches = 0
        for (x, h) in zip(xs, got) {
            let expected = Float16(x)
            if expected.isNaN ? !Float16(bitPattern: h).isNaN : h != expected.bitPattern {
                if mismatches < 5 { print("float32ToFloat16(\(x) = 0x\(String(x.bitPattern, radix: 16))): 0x\(String(h, radix: 16)), expected 0x\(String(expected.bitPattern, radix: 16))") }
                mismatches += 1
            }
        }
        print("float32ToFloat16: \(mismatches) of \(xs.count) inputs differ from Float16(Float)")
        #expect(mismatches == 0)
    }

    @Test func float32ToBFloat16MatchesC10Rounding() {
        let xs = Self.narrowingInputs
        let got = Self.narrow(xs, { Conversion.float32ToBFloat16($0, $1, count: $2) })
        let mismatches = zip(xs, got).filter { x, h in h != Self.referenceBFloat16(x) }.count
        print("float32ToBFloat16: \(mismatches) of \(xs.count) inputs differ from c10's round_to_nearest_even")
        #expect(mismatches == 0)
        // Ties go to even: 1 + 2^-8 lies halfway between 1 and 1 + 2^-7.
        #expect(Self.narrow([1 + 0x1p-8, 1 + 3 * 0x1p-8], { Conversion.float32ToBFloat16($0, $1, count: $2) }) == [0x3F80, 0x3F82])
    }

    @Test func roundTripsAreExact() {
        for tail in [0, 1, 7, 9] {  // exercise the padded tail too
            let halves = Array(Self.allPatterns.prefix(65536 - tail))
            let f16 = Self.widen(halves, { Conversion.float16ToFloat32($0, $1, count: $2) })
            let back16 = Self.narrow(f16, { Conversion.float32ToFloat16($0, $1, count: $2) })
            let bad16 = zip(halves, back16).filter { h, b in Float16(bitPattern: h).isNaN ? !Float16(bitPattern: b).isNaN : h != b }.count
            let bf = Self.widen(halves, { Conversion.bfloat16ToFloat32($0, $1, count: $2) })
            let backBF = Self.narrow(bf, { Conversion.float32ToBFloat16($0, $1, count: $2) })
            let badBF = zip(halves, backBF).filter { h, b in Float(bitPattern: UInt32(h) << 16).isNaN ? b != 0x7FC0 : h != b }.count
            #expect(bad16 == 0 && badBF == 0, "count \(halves.count): \(bad16) float16 and \(badBF) bfloat16 patterns do not round-trip")
        }
    }
}

/// Conversion speed on 16M elements (opt-in: `WUERSTCHEN_BENCH=1 swift test -c release -Xswiftc -enable-testing
/// --filter ConversionSpeed`); prints GB/s counting bytes read and written.
@Suite(.benchmark)
struct ConversionSpeed {
    @Test func throughput() {
        let n = 16 << 20
        let src = UnsafeMutableRawPointer.allocate(byteCount: n * 2, alignment: 64)
        let floats = UnsafeMutablePointer<Float>.allocate(capacity: n)
        defer { src.deallocate(); floats.deallocate() }
        var g = SplitMix(seed: 3)
        for i in 0..<n { src.storeBytes(of: UInt16(truncatingIfNeeded: g.next() >> 48) & 0x7BFF, toByteOffset: i * 2, as: UInt16.self) }
        func measure(_ name: String, bytes: Int, _ body: () -> Void) {
            body()
            var best = Double.infinity
            for _ in 0..<5 {
                let t0 = DispatchTime.now().uptimeNanoseconds
                body()
                best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
            }
            print("\(name) on \(n) elements: \(String(format: "%.2f", best * 1e3)) ms, \(String(format: "%.2f", Double(bytes) / best / 1e9)) GB/s (bytes read + written)")
        }
        measure("float16ToFloat32", bytes: n * 6) { Conversion.float16ToFloat32(src, floats, count: n) }
        measure("bfloat16ToFloat32", bytes: n * 6) { Conversion.bfloat16ToFloat32(src, floats, count: n) }
        measure("float32ToFloat16", bytes: n * 6) { Conversion.float32ToFloat16(floats, src, count: n) }
        measure("float32ToBFloat16", bytes: n * 6) { Conversion.float32ToBFloat16(floats, src, count: n) }
        measure("scalar Float(Float16) loop", bytes: n * 6) {
            for i in 0..<n { floats[i] = Float(Float16(bitPattern: src.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))) }
        }
    }
}
