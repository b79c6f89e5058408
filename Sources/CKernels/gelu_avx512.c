// Exact-erf GELU on AVX-512F: the arithmetic of `Activation.gelu8` / `VectorMath.normalTail`
// (Sources/Tensor/Activations.swift, VectorMath.swift) on 16 lanes, which those files document
// (x Phi(x) = max(x, 0) - |x| Phi(-|x|), Phi(-a) = 2^G(a)). Keep the two in step: the tests
// compare them bit for bit (Tests/TensorTests/GELUKernelTests.swift).
//
// Why C: at the prior's size ([2,24,24,6144], 2 x 28 MB per call) the AVX2 loop is compute-bound at
// about 12 cycles per 8 lanes, behind PyTorch's AVX-512 Sleef GELU; 16 lanes per instruction halve
// the arithmetic so that the loop runs at the speed of memory.
#include "CKernels.h"

#if defined(__x86_64__)

#include <cpuid.h>
#include <immintrin.h>

// Every multiply-add below is an explicit _mm512_fmadd_ps, exactly where the Swift code has
// `addingProduct`; nothing else may be fused, or the two paths would round differently.
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
    // n = round(g) by the 1.5 * 2^23 shifter, r = g - n exactly.
    const __m512 shifter = C(0x1.8p+23f);
    __m512 k = _mm512_add_ps(g, shifter);
    __m512 r = _mm512_sub_ps(g, _mm512_sub_ps(k, shifter));
    __m512 q = _mm512_fmadd_ps(C(0x1.5bba14p-10f), r, C(0x1.3cea88p-7f));
    q = _mm512_fmadd_ps(q, r, C(0x1.c6b752p-5f));
    q = _mm512_fmadd_ps(q, r, C(0x1.ebf9bcp-3f));
    q = _mm512_fmadd_ps(q, r, C(0x1.62e42ap-1f));
    __m512 p = _mm512_fmadd_ps(q, r, C(1.0f));
    __m512i scaled = _mm512_add_epi32(_mm512_castps_si512(p), _mm512_slli_epi32(_mm512_castps_si512(k), 23));
    return _mm512_castsi512_ps(scaled);
}

// x: 16 lanes -> GELU(x) (Activation.gelu8).
TARGET static inline __m512 gelu16(__m512 x) {
    __m512 a = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(0x7FFFFFFF)));
    // min(9, a) and max(0, x) in this operand order return the second operand for NaN, like
    // Swift's `replacing(with:where:)`, and max(0, -0) keeps -0.
    __m512 ac = _mm512_min_ps(C(9.0f), a);
    __m512 positive = _mm512_max_ps(_mm512_setzero_ps(), x);
    __m512 minus_tail = _mm512_castsi512_ps(
        _mm512_xor_si512(_mm512_castps_si512(normal_tail(ac)), _mm512_set1_epi32((int)0x80000000)));
    return _mm512_fmadd_ps(ac, minus_tail, positive);
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
