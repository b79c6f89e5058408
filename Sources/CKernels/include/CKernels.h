// AVX-512 versions of the Tensor target's hottest pointwise kernels, chosen at run time, and the libc calls Swift cannot reach.
//
// Swift (Package.swift) targets x86-64-v3 (AVX2 + FMA) and cannot emit AVX-512 for one function only;
// these C functions carry `__attribute__((target("avx512f")))` instead, so the rest of the binary still
// runs on any x86-64-v3 CPU. They exist on x86-64 only; callers check `ck_cpu_has_avx512f()` first and
// keep their Swift SIMD8 path as the fallback (Sources/Tensor/Activations.swift).
#ifndef CKERNELS_H
#define CKERNELS_H

#include <stddef.h>

#if defined(__x86_64__)

/// 1 when the CPU has AVX-512F and the OS saves the zmm/opmask state (CPUID + XGETBV), else 0.
int ck_cpu_has_avx512f(void);

/// `out[i] = GELU(x[i])` (exact erf GELU, `torch.nn.GELU()`) for `count` elements, 16 lanes at a time;
/// `out` may equal `x`. Bit-identical to `Activation.gelu8` in Swift: same polynomial, same operation
/// order, same fused multiply-adds. Only call when `ck_cpu_has_avx512f()` returned 1.
void ck_gelu_avx512(const float *x, float *out, size_t count);

#endif

/// glibc's `malloc_trim(0)`: returns the free pages of every malloc arena to the system; 1 when memory was
/// released, 0 when none could be (and on a libc without it). Swift's Glibc module does not export
/// <malloc.h>, hence this wrapper (Sources/Tensor/ThreadPool.swift, `Compute.releaseIdleMemory`).
int ck_malloc_trim(void);

#endif
