import CKernels
import Foundation

/// Which implementation runs a kernel that has more than one (exact GELU so far).
///
/// The Swift SIMD8 code is the reference and the fallback; on x86-64 CPUs with AVX-512F a C kernel
/// (Sources/CKernels) does the same arithmetic on 16 lanes, bit for bit. Setting the environment
/// variable `WUERSTCHEN_NO_AVX512` (to anything) turns the AVX-512 kernels off for the whole process.
public enum KernelPath: String, Sendable, CaseIterable {
    /// The fastest kernel this CPU runs: AVX-512 where `avx512Available`, else SIMD8.
    case best
    /// The portable Swift SIMD8 kernel (AVX2 + FMA in x86-64 release builds), whatever the CPU.
    case simd8

    /// Whether the AVX-512 kernels run here: an x86-64 CPU with AVX-512F whose OS saves the zmm state,
    /// and `WUERSTCHEN_NO_AVX512` unset. Read once per process.
    public static let avx512Available: Bool = {
        #if arch(x86_64)
        return ProcessInfo.processInfo.environment["WUERSTCHEN_NO_AVX512"] == nil && ck_cpu_has_avx512f() != 0
        #else
        return false
        #endif
    }()

    /// Whether this path runs the AVX-512 kernel on this machine.
    @inline(__always)
    var usesAVX512: Bool { self == .best && KernelPath.avx512Available }

    /// What `best` runs on this machine: "avx512" or "simd8".
    public static var bestName: String { avx512Available ? "avx512" : "simd8" }
}
