import Foundation
import SafeTensors
import Tensor

// diffusers `DDPMWuerstchenScheduler` (src/diffusers/schedulers/scheduling_ddpm_wuerstchen.py) and the
// timestep lists of the Würstchen pipelines (pipelines/deprecated/wuerstchen/pipeline_wuerstchen_prior.py),
// reproduced operation by operation in the dtypes torch uses, so that the schedule is bit-identical and
// a step agrees to float32 rounding:
// - timesteps are float32 (`torch.linspace`, or `torch.Tensor(list)` of float64 values);
// - `s` is the float32 tensor `torch.tensor([s])`, `scaler` a Python float (float64);
// - every tensor op rounds to float32; Python scalars in tensor ops are rounded to float32 first.
// The one op not reproduced bit for bit is `sqrt`: torch 2.15's CPU float32 sqrt is not correctly
// rounded (1 ulp off for about a fifth of the inputs, measured), so steps agree within ~3e-7 relative.
// Unlike diffusers, each row of a batch may be at its own timestep, and the noise of the step is drawn
// by the caller (see `stepNoise`), so that requests batched together keep their own generators.

/// `scheduler_config.json` of a Würstchen pipeline; defaults are diffusers'.
public struct DDPMWuerstchenSchedulerConfig: Codable, Sendable, Equatable {
    /// Warps the timesteps before the cosine schedule: `1 - (1 - t)^scaler` above 1, `t^scaler` below.
    public var scaler: Double
    /// Offset of the cosine schedule.
    public var s: Double

    enum CodingKeys: String, CodingKey {
        case scaler
        case s
    }

    /// A configuration; the defaults are diffusers' (and the published pipelines').
    public init(scaler: Double = 1.0, s: Double = 0.008) {
        self.scaler = scaler
        self.s = s
    }

    /// Decodes `scheduler_config.json`, taking the default for every missing key.
    public init(from decoder: Decoder) throws {
        let k = try decoder.container(keyedBy: CodingKeys.self)
        scaler = try k.decodeIfPresent(Double.self, forKey: .scaler) ?? 1.0
        s = try k.decodeIfPresent(Double.self, forKey: .s) ?? 0.008
    }
}

/// diffusers' `DDPMWuerstchenScheduler`: the cosine-schedule DDPM step of both Würstchen stages.
public struct DDPMWuerstchenScheduler: Sendable {
    /// The configuration.
    public let config: DDPMWuerstchenSchedulerConfig
    /// `torch.tensor([s])`: float32.
    private let s: Float
    /// `cos(s / (1 + s) * pi * 0.5) ** 2` in float32.
    private let initAlphaCumprod: Float

    /// A scheduler with `config`.
    public init(config: DDPMWuerstchenSchedulerConfig = DDPMWuerstchenSchedulerConfig()) {
        precondition(config.s > -1, "DDPMWuerstchenScheduler: s \(config.s) must be above -1")
        self.config = config
        s = Float(config.s)
        initAlphaCumprod = Self.squaredCos(s / (1 + s) * Self.pi * 0.5)
    }

    /// Reads `scheduler_config.json` from a pipeline's `scheduler` folder.
    public init(folder: URL) throws {
        self.init(config: try loadConfig(DDPMWuerstchenSchedulerConfig.self, from: folder, fileName: "scheduler_config.json"))
    }

    /// `torch.pi` as a float32 tensor op sees it.
    private static let pi = Float(Double.pi)

    /// `torch.cos(v) ** 2`: `pow(x, 2)` is `x * x` in torch.
    @inline(__always)
    private static func squaredCos(_ v: Float) -> Float {
        let c = Foundation.cos(v)
        return c * c
    }

    // MARK: Schedules

    /// `DEFAULT_STAGE_C_TIMESTEPS` of the prior pipeline as `set_timesteps(timesteps=...)` stores it:
    /// `np.linspace(1.0, 2/3, 20) + np.linspace(2/3, 0.0, 11)[1:]` in float64, then `torch.Tensor` (float32).
    /// 30 values, 29 denoising steps.
    public static let defaultStageCTimesteps: [Float] =
        (numpyLinspace(1.0, 2.0 / 3.0, 20) + numpyLinspace(2.0 / 3.0, 0.0, 11).dropFirst()).map { Float($0) }

    /// `np.linspace(start, stop, num)` (endpoint included): `i * step + start` in float64 (two roundings),
    /// and the last value exactly `stop`.
    static func numpyLinspace(_ start: Double, _ stop: Double, _ num: Int) -> [Double] {
        precondition(num >= 1, "numpyLinspace: num \(num) must be positive")
        if num == 1 { return [start] }
        let step = (stop - start) / Double(num - 1)
        var y = (0..<num).map { Double($0) * step + start }
        y[num - 1] = stop
        return y
    }

    /// `set_timesteps(num_inference_steps=steps)`: `torch.linspace(1.0, 0.0, steps + 1)` in float32.
    ///
    /// torch's CPU kernel (aten/src/ATen/native/cpu/RangeFactoriesKernel.cpp, `linspace_kernel`) computes
    /// `step = (end - start) / (n - 1)` in float32, then `start + step * i` for the first `n / 2` values and
    /// `end - step * (n - 1 - i)` for the rest; its x86 builds contract both into one fused multiply-add
    /// (checked against torch 2.15 for every n up to 400), so each value is rounded once.
    public static func timesteps(steps: Int) -> [Float] {
        precondition(steps >= 1, "DDPMWuerstchenScheduler: the number of steps must be at least 1, got \(steps)")
        return torchLinspace(1, 0, steps + 1)
    }

    /// `torch.linspace(start, end, n)` for float32 on CPU.
    static func torchLinspace(_ start: Float, _ end: Float, _ n: Int) -> [Float] {
        precondition(n >= 1, "torchLinspace: n \(n) must be positive")
        if n == 1 { return [start] }
        let step = (end - start) / Float(n - 1)
        let halfway = n / 2
        return (0..<n).map { i in
            i < halfway ? start.addingProduct(step, Float(i)) : end.addingProduct(-step, Float(n - 1 - i))
        }
    }

    /// `set_timesteps(timesteps=values)` with a Python list of floats: `torch.Tensor(values)` (float32).
    public static func timesteps(_ values: [Double]) -> [Float] { values.map { Float($0) } }

    /// `previous_timestep`: the entry after the first entry of `timesteps` closest to `t` (`argmin` of
    /// `|timesteps - t|` in float32, first on ties). In the pipelines' loop over `timesteps[:-1]` this is
    /// `timesteps[i + 1]` unless the list repeats a value.
    public static func previousTimestep(_ t: Float, in timesteps: [Float]) -> Float {
        precondition(!timesteps.isEmpty, "previousTimestep: empty schedule")
        var best = 0
        var bestDistance = Float.infinity
        for (i, v) in timesteps.enumerated() {
            let d = Swift.abs(v - t)
            if d < bestDistance || (d.isNaN && !bestDistance.isNaN) {
                best = i
                bestDistance = d
            }
        }
        precondition(best + 1 < timesteps.count, "previousTimestep: \(t) is the last timestep of the schedule; there is no step after it")
        return timesteps[best + 1]
    }

    // MARK: Step

    /// `_alpha_cumprod(t)` for one timestep, in float32 as torch computes it on a small (< 16 element) tensor.
    public func alphaCumprod(_ t: Float) -> Float {
        var t = t
        if config.scaler > 1 {
            t = 1 - Self.power(1 - t, config.scaler)
        } else if config.scaler < 1 {
            t = Self.power(t, config.scaler)
        }
        let v = Self.squaredCos((t + s) / (1 + s) * Self.pi * 0.5) / initAlphaCumprod
        return Swift.min(Swift.max(v, 0.0001), 0.9999)  // clamp(0.0001, 0.9999), bounds as float32
    }

    /// `tensor ** exponent` with a Python float exponent (aten PowKernel.cpp): `x * x` for 2, `x * x * x`
    /// for 3, `sqrt` for 0.5, otherwise `std::pow(float, double)`, i.e. a float64 `pow` rounded to float32.
    static func power(_ x: Float, _ exponent: Double) -> Float {
        switch exponent {
        case 2: return x * x
        case 3: return x * x * x
        case 0.5: return x.squareRoot()
        default: return Float(Foundation.pow(Double(x), exponent))
        }
    }

    /// One denoising step from `timesteps[b]` to `previous[b]` for every row b, as diffusers' `step`
    /// (with `previous[b] = previousTimestep(timesteps[b], in: schedule)`).
    ///
    /// - Parameters:
    ///   - modelOutput: the predicted noise `[B, ...]` (after guidance).
    ///   - timesteps: the current t of each row (`ratio` in the pipelines), B values.
    ///   - previous: the t each row steps to, B values; a row stepping to 0 gets no noise.
    ///   - sample: the current latents, same shape as `modelOutput`.
    ///   - noise: standard normal noise of the same shape; diffusers draws it at every step, including the
    ///     last (where it is multiplied by 0), as `randn_tensor(sample.shape)` in NCHW: see `stepNoise`.
    /// - Returns: the latents at `previous`, same shape.
    public func step(modelOutput: Tensor, timesteps: [Float], previous: [Float], sample: Tensor, noise: Tensor) -> Tensor {
        let b = sample.dim(0)
        precondition(modelOutput.shape == sample.shape, "DDPMWuerstchenScheduler.step: model output \(modelOutput.shape) and sample \(sample.shape) differ")
        precondition(noise.shape == sample.shape, "DDPMWuerstchenScheduler.step: noise \(noise.shape) and sample \(sample.shape) differ")
        precondition(timesteps.count == b && previous.count == b, "DDPMWuerstchenScheduler.step: need \(b) timesteps and previous timesteps, got \(timesteps.count) and \(previous.count)")
        let out = Tensor(uninitialized: sample.shape)
        let n = sample.count / max(b, 1)
        for row in 0..<b {
            let acp = alphaCumprod(timesteps[row])
            let acpPrev = alphaCumprod(previous[row])
            let alpha = acp / acpPrev
            let oneMinusAlpha = 1 - alpha
            let rootOneMinusAcp = (1 - acp).squareRoot()
            let rootInvAlpha = (1 / alpha).squareRoot()  // (1.0 / alpha).sqrt(): reciprocal, then sqrt
            let std = (oneMinusAlpha * (1 - acpPrev) / (1 - acp)).squareRoot()
            let mask: Float = previous[row] != 0 ? 1 : 0  // (prev_t != 0).float()
            let x = sample.data + row * n, m = modelOutput.data + row * n
            let z = noise.data + row * n, o = out.data + row * n
            for i in 0..<n {
                // mu = (1/alpha).sqrt() * (sample - (1 - alpha) * model_output / (1 - alpha_cumprod).sqrt())
                let mu = rootInvAlpha * (x[i] - (oneMinusAlpha * m[i]) / rootOneMinusAcp)
                // pred = mu + (std * noise) * mask
                o[i] = mu + (std * z[i]) * mask
            }
        }
        return out
    }

    /// The clean sample the model's noise prediction implies at `timestep` (`pred_original_sample` of
    /// diffusers' DDPM schedulers; `DDPMWuerstchenScheduler` itself computes none):
    /// `x0 = (x_t - sqrt(1 - alpha_cumprod(t)) * eps) / sqrt(alpha_cumprod(t))`, per row as `step`.
    /// modelOutput, sample: [B, ...] -> [B, ...]
    public func predictedOriginal(modelOutput: Tensor, timesteps: [Float], sample: Tensor) -> Tensor {
        let b = sample.dim(0)
        precondition(modelOutput.shape == sample.shape && timesteps.count == b,
                     "DDPMWuerstchenScheduler.predictedOriginal: model output \(modelOutput.shape), sample \(sample.shape), \(timesteps.count) timesteps")
        let out = Tensor(uninitialized: sample.shape)
        let n = sample.count / max(b, 1)
        for row in 0..<b {
            let acp = alphaCumprod(timesteps[row])
            let rootAcp = acp.squareRoot(), rootOneMinusAcp = (1 - acp).squareRoot()
            let x = sample.data + row * n, m = modelOutput.data + row * n, o = out.data + row * n
            for i in 0..<n { o[i] = (x[i] - rootOneMinusAcp * m[i]) / rootAcp }
        }
        return out
    }

    /// The noise diffusers' `step` draws for latents of NHWC shape `[n, h, w, c]` from one generator:
    /// `torch.randn([n, c, h, w], generator=g)` (NCHW, one call for the whole batch of that generator,
    /// so `n` images of one request come from one draw, not n), permuted to NHWC.
    /// The prior pipeline draws, per generator: the initial latents (`prepare_latents`, the same call),
    /// then one of these per step, in step order.
    public static func stepNoise(_ generator: TorchGenerator, shape nhwc: [Int]) -> Tensor {
        precondition(nhwc.count == 4, "stepNoise: shape must be [n, h, w, c], got \(nhwc)")
        return generator.randn([nhwc[0], nhwc[3], nhwc[1], nhwc[2]]).nchwToNHWC()
    }
}
