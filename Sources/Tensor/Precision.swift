import CDNNL

/// Numeric precision of the model's GEMMs: the `precision` setting of the CLI (`--precision`), the
/// service's config file and `WUERSTCHEN_PRECISION`.
///
/// In `bf16` the Linear, convolution and attention-projection weights are held in bfloat16 (converted
/// once at load, round-to-nearest-even as torch's `.to(torch.bfloat16)`), activations are rounded to
/// bfloat16 where they enter those GEMMs, and oneDNN accumulates and writes float32. Everything else
/// (norms, softmax, GELU, the attention score GEMMs, the scheduler, the residual stream) stays float32,
/// which is what keeps Stage B/C free of the fp16 overflows upstream reports.
public enum Precision: String, Sendable, Hashable, CaseIterable, Codable {
    /// Float32 weights, GEMMs through OpenBLAS.
    case fp32
    /// bfloat16 GEMM weights and inputs with float32 accumulation, through oneDNN (AVX512-BF16 CPUs).
    case bf16

    /// Whether this CPU runs bfloat16 GEMMs natively: oneDNN's effective ISA includes AVX512-BF16
    /// (`dnnl_get_effective_cpu_isa`, which also honours `ONEDNN_MAX_CPU_ISA`).
    public static let bfloat16Supported: Bool = {
        let isa = dnnl_get_effective_cpu_isa().rawValue
        let bf16 = dnnl_cpu_isa_avx512_core_bf16.rawValue
        return isa & bf16 == bf16
    }()

    /// The precision to run: `self`, or `fp32` with a message saying why when bf16 is asked for on a CPU
    /// without AVX512-BF16 (oneDNN would emulate it, slower than OpenBLAS in float32).
    public func resolved() -> (precision: Precision, note: String?) {
        guard self == .bf16, !Precision.bfloat16Supported else { return (self, nil) }
        let isa = String(dnnl_get_effective_cpu_isa().rawValue, radix: 16)
        return (.fp32, "precision bf16 needs AVX512-BF16, which this CPU lacks (oneDNN ISA 0x\(isa)): running fp32")
    }
}
