import CDNNL

/// Numeric precision of the model's GEMMs: the `precision` setting of the CLI (`--precision`), the
/// service's config file and `WUERSTCHEN_PRECISION`.
///
/// In `bf16` the Linear, convolution and attention-projection weights are held in bfloat16 (converted
/// once at load, round-to-nearest-even as torch's `.to(torch.bfloat16)`), activations are rounded to
/// bfloat16 where they enter those GEMMs, and oneDNN accumulates and writes float32. Everything else
/// (norms, softmax, GELU, the attention score GEMMs, the scheduler, the residual stream) stays float32,
/// which is what keeps Stage B/C free of the fp16 overflows upstream reports.
///
/// In `int8` the Linear, 1x1-convolution and attention-projection weights are held as signed bytes with one
/// scale per output channel (symmetric, rounded once at load), the activations are quantised at every call
/// to unsigned bytes with a scale and zero point per row (dynamic, no calibration), and oneDNN multiplies
/// them with int32 accumulation; scales, zero points and bias are applied in float32. Everything else (k x k
/// and transposed convolutions, the VQ-GAN, norms, softmax, attention scores, depthwise convolutions, the
/// residual stream) stays float32.
public enum Precision: String, Sendable, Hashable, CaseIterable, Codable {
    /// Float32 weights, GEMMs through OpenBLAS.
    case fp32
    /// bfloat16 GEMM weights and inputs with float32 accumulation, through oneDNN (AVX512-BF16 CPUs).
    case bf16
    /// int8 GEMM weights (per output channel) and activations (per row, dynamic) with int32 accumulation,
    /// through oneDNN (AVX2 and later; VNNI where the CPU has it).
    case int8

    /// Whether this CPU runs bfloat16 GEMMs natively: oneDNN's effective ISA includes AVX512-BF16
    /// (`dnnl_get_effective_cpu_isa`, which also honours `ONEDNN_MAX_CPU_ISA`).
    public static let bfloat16Supported: Bool = {
        let isa = dnnl_get_effective_cpu_isa().rawValue
        let bf16 = dnnl_cpu_isa_avx512_core_bf16.rawValue
        return isa & bf16 == bf16
    }()

    /// Whether oneDNN's effective ISA includes AVX2, the oldest on which int8 runs here (`gemm:jit` with
    /// `vpmaddubsw`; `brg:avx512_core_vnni` with AVX512-VNNI); below it int8 is not offered.
    public static let int8Supported: Bool = {
        let isa = dnnl_get_effective_cpu_isa().rawValue
        let avx2 = dnnl_cpu_isa_avx2.rawValue
        return isa & avx2 == avx2
    }()

    /// The largest activation byte in `int8`: 255 where oneDNN runs AVX512-VNNI (or AMX), whose `vpdpbusd`
    /// accumulates u8 x s8 products in int32; 127 elsewhere, where `vpmaddubsw` sums two products in a
    /// saturating int16 (2 x 127 x 127 fits, 2 x 255 x 127 does not).
    public static let int8ActivationLevels: Int = {
        let isa = dnnl_get_effective_cpu_isa().rawValue
        let vnni = dnnl_cpu_isa_avx512_core_vnni.rawValue
        return isa & vnni == vnni ? 255 : 127
    }()

    /// The precision to run: `self`, or `fp32` with a message saying why when bf16 is asked for on a CPU
    /// without AVX512-BF16 (oneDNN would emulate it, slower than OpenBLAS in float32), or int8 on one
    /// without AVX2.
    public func resolved() -> (precision: Precision, note: String?) {
        let isa = String(dnnl_get_effective_cpu_isa().rawValue, radix: 16)
        switch self {
        case .bf16 where !Precision.bfloat16Supported:
            return (.fp32, "precision bf16 needs AVX512-BF16, which this CPU lacks (oneDNN ISA 0x\(isa)): running fp32")
        case .int8 where !Precision.int8Supported:
            return (.fp32, "precision int8 needs AVX2, which this CPU lacks (oneDNN ISA 0x\(isa)): running fp32")
        default:
            return (self, nil)
        }
    }
}
