// Exact-erf GELU on AVX-512F: the arithmetic of `Activation.gelu8` / `VectorMath.normalTail`
// (Sources/Tensor/Activations.swift, VectorMath.swift) on 16 lanes, which those files document
// (x Phi(x) = max(x, 0) - |x| Phi(-|x|), Phi(-a) = 2^G(a)). Keep the two in step: the tests
// compare them bit for bit on all 2^32 inputs (Tests/TensorTests/GELUKernelTests.swift). Where
// AVX-512 has a shorter way to the same bits it is used: vrndscaleps + vscalefps for the 2^n scaling,
// vfnmadd for the sign flip (about 10% fewer instructions than a literal translation).
//
// Why C: at the prior's size ([2,24,24,6144], 2 x 28 MB per call) the AVX2 loop is compute-bound at
// about 12 cycles per 8 lanes, behind PyTorch's AVX-512 Sleef GELU; 16 lanes per instruction halve
// the arithmetic so that the loop runs at the speed of memory.
#include "CKernels.h"

#if defined(__x86_64__)

#include <cpuid.h>
#include <immintrin.h>

// Every multiply-add below is an explicit _mm512_fmadd_ps / _mm512_fnmadd_ps, exactly where the Swift
// code has `addingProduct`; nothing else may be fused, or the two paths would round differently.
#pragma STDC FP_CONTRACT OFF

int ck_cpu_has_avx512f(void) {
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
    if (!(ecx & bit_OSXSAVE)) return 0;
    // XCR0: SSE (1), AVX (2), opmask (5), ZMM_Hi256 (6), Hi16_ZMM (7) state enabled by the OS.
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 0xE6) != 0xE6) return 0;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return 0;
    return (ebx & bit_AVX512F) != 0;
}

#define TARGET __attribute__((target("avx512f")))
#define C(v) _mm512_set1_ps(v)

// Phi(-a) for 0 <= a <= 9: 2^G(a), G a degree-9 polynomial; 2^r by a degree-5 one (VectorMath.normalTail).
// Constants are the Swift Float literals' exact values, written in hex.
TARGET static inline __m512 normal_tail(__m512 a) {
    __m512 g = _mm512_fmadd_ps(C(0x1.92342ep-23f), a, C(-0x1.3da36p-18f));
    g = _mm512_fmadd_ps(g, a, C(0x1.82661ep-15f));
    g = _mm512_fmadd_ps(g, a, C(-0x1.96a15ap-13f));
    g = _mm512_fmadd_ps(g, a, C(-0x1.2f15b2p-13f));
    g = _mm512_fmadd_ps(g, a, C(0x1.d0b072p-8f));
    g = _mm512_fmadd_ps(g, a, C(-0x1.ae407p-5f));
    g = _mm512_fmadd_ps(g, a, C(-0x1.d63846p-2f));
    g = _mm512_fmadd_ps(g, a, C(-0x1.26aeeap+0f));
    g = _mm512_fmadd_ps(g, a, C(-0x1.fffffep-1f));
    // n = round(g) (to nearest even, as the 1.5 * 2^23 shifter in Swift), r = g - n exactly.
    __m512 n = _mm512_roundscale_ps(g, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_sub_ps(g, n);
    __m512 q = _mm512_fmadd_ps(C(0x1.5bba14p-10f), r, C(0x1.3cea88p-7f));
    q = _mm512_fmadd_ps(q, r, C(0x1.c6b752p-5f));
    q = _mm512_fmadd_ps(q, r, C(0x1.ebf9bcp-3f));
    q = _mm512_fmadd_ps(q, r, C(0x1.62e42ap-1f));
    __m512 p = _mm512_fmadd_ps(q, r, C(1.0f));
    // p 2^n: exact, as Swift's integer add into the exponent field (2^-63 <= result < 1 is normal).
    return _mm512_scalef_ps(p, n);
}

// x: 16 lanes -> GELU(x) (Activation.gelu8).
TARGET static inline __m512 gelu16(__m512 x) {
    // min(9, a) and max(0, x) in this operand order return the second operand for NaN, like
    // Swift's `replacing(with:where:)`, and max(0, -0) keeps -0.
    __m512 ac = _mm512_min_ps(C(9.0f), _mm512_abs_ps(x));
    __m512 positive = _mm512_max_ps(_mm512_setzero_ps(), x);
    // positive - ac * tail in one rounding: Swift's positive + ac * (tail with its sign bit flipped).
    return _mm512_fnmadd_ps(ac, normal_tail(ac), positive);
}

TARGET void ck_gelu_avx512(const float *x, float *out, size_t count) {
    size_t i = 0;
    // Four independent vectors per iteration hide the ~40-operation dependency chain of each.
    for (; i + 64 <= count; i += 64) {
        __m512 v0 = gelu16(_mm512_loadu_ps(x + i)), v1 = gelu16(_mm512_loadu_ps(x + i + 16));
        __m512 v2 = gelu16(_mm512_loadu_ps(x + i + 32)), v3 = gelu16(_mm512_loadu_ps(x + i + 48));
        _mm512_storeu_ps(out + i, v0);
        _mm512_storeu_ps(out + i + 16, v1);
        _mm512_storeu_ps(out + i + 32, v2);
        _mm512_storeu_ps(out + i + 48, v3);
    }
    for (; i + 16 <= count; i += 16) _mm512_storeu_ps(out + i, gelu16(_mm512_loadu_ps(x + i)));
    if (i < count) {
        // Masked load and store: the tail sees the same lane arithmetic and touches no memory past it.
        __mmask16 m = (__mmask16)((1u << (count - i)) - 1);
        _mm512_mask_storeu_ps(out + i, m, gelu16(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

#endif
