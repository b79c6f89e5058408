import Foundation
import SafeTensors
import Testing
import Tensor
@testable import Wuerstchen

/// `DDPMWuerstchenScheduler` and the prior's timestep lists against diffusers (scripts/fixtures/scheduler.py).
@Suite struct DDPMWuerstchenSchedulerTests {
    typealias Scheduler = DDPMWuerstchenScheduler

    static func bits(_ v: [Float]) -> [UInt32] { v.map(\.bitPattern) }

    /// Bit-identical to `torch.Tensor(DEFAULT_STAGE_C_TIMESTEPS)`.
    @Test func defaultStageCTimestepsAreTorchs() throws {
        let f = try Fixture.load("scheduler")
        #expect(Scheduler.defaultStageCTimesteps.count == 30)
        #expect(Self.bits(Scheduler.defaultStageCTimesteps) == Self.bits(try f.tensor("timesteps.default").toArray()))
    }

    /// Bit-identical to `torch.linspace(1, 0, N + 1)` (float32, the two-halves kernel with FMA).
    @Test(arguments: [1, 4, 12, 60]) func linspaceTimestepsAreTorchs(_ n: Int) throws {
        let f = try Fixture.load("scheduler")
        let expected = try f.tensor("timesteps.\(n)").toArray()
        #expect(Self.bits(Scheduler.timesteps(steps: n)) == Self.bits(expected), "N = \(n): \(Scheduler.timesteps(steps: n)) vs \(expected)")
    }

    @Test func previousTimestepIsNextEntry() {
        let ts = Scheduler.defaultStageCTimesteps
        for i in 0..<(ts.count - 1) { #expect(Scheduler.previousTimestep(ts[i], in: ts) == ts[i + 1]) }
        // argmin picks the first of equal entries, as diffusers does.
        #expect(Scheduler.previousTimestep(0.5, in: [1, 0.5, 0.5, 0]) == 0.5)
    }

    /// Whole prior loops: latents and every step's noise drawn from one TorchGenerator in diffusers' order
    /// (NCHW draws permuted to NHWC). Tolerance 1e-6 relative per step.
    @Test(arguments: [("loop4", 42, 4), ("loopdefault", 7, 0)]) func pipelineLoopMatchesDiffusers(_ name: String, _ seed: Int, _ steps: Int) throws {
        let f = try Fixture.load("scheduler")
        let scheduler = Scheduler()
        let ts = steps > 0 ? Scheduler.timesteps(steps: steps) : Scheduler.defaultStageCTimesteps
        let gen = TorchGenerator(seed: UInt64(seed))
        var latents = Scheduler.stepNoise(gen, shape: [2, 3, 4, 16])
        expectClose(latents, try f.tensor("\(name).latents"), tolerance: 0, "\(name) initial latents")
        var worst: Float = 0
        for i in 0..<(ts.count - 1) {
            let t = ts[i], prev = Scheduler.previousTimestep(t, in: ts)
            let noise = Scheduler.stepNoise(gen, shape: latents.shape)
            latents = scheduler.step(
                modelOutput: try f.tensor("\(name).model_output.\(i)"), timesteps: [t, t], previous: [prev, prev],
                sample: latents, noise: noise)
            let expected = try f.tensor("\(name).step.\(i)")
            worst = max(worst, relativeError(latents, expected))
            expectClose(latents, expected, tolerance: 1e-6, "\(name) step \(i)")
        }
        print("\(name): worst step error \(worst)")
    }

    /// `_alpha_cumprod` for scaler 1, above 1 and below 1 (special-cased and general powers), and the clamp.
    @Test(arguments: [1.0, 2.0, 0.5, 1.5, 0.7]) func alphaCumprodMatchesDiffusers(_ scaler: Double) throws {
        let f = try Fixture.load("scheduler")
        let scheduler = Scheduler(config: DDPMWuerstchenSchedulerConfig(scaler: scaler))
        let t = try f.tensor("acp.t").toArray()
        let got = Tensor(shape: [t.count], values: t.map { scheduler.alphaCumprod($0) })
        expectClose(got, try f.tensor("acp.scaler\(scaler)"), tolerance: 1e-6, "alpha_cumprod scaler \(scaler)")
        // t = 1 and t = 0 hit the clamp, exactly at the float32 bounds.
        #expect(scheduler.alphaCumprod(1) == Float(0.0001))
        #expect(scheduler.alphaCumprod(0) == Float(0.9999))

        let out = scheduler.step(
            modelOutput: try f.tensor("scaler\(scaler).model_output"), timesteps: [0.6, 0.6], previous: [0.4, 0.4],
            sample: try f.tensor("scaler\(scaler).sample"), noise: try f.tensor("scaler\(scaler).noise"))
        expectClose(out, try f.tensor("scaler\(scaler).out"), tolerance: 1e-6, "step scaler \(scaler)")
    }

    /// Rows at different timesteps in one call, each row's noise from its own generator.
    @Test func rowsAtDifferentTimesteps() throws {
        let f = try Fixture.load("scheduler")
        let ts = Scheduler.defaultStageCTimesteps
        let noise = Tensor.concat(
            [Scheduler.stepNoise(TorchGenerator(seed: 100), shape: [1, 3, 4, 16]),
             Scheduler.stepNoise(TorchGenerator(seed: 101), shape: [1, 3, 4, 16])], axis: 0)
        let out = Scheduler().step(
            modelOutput: try f.tensor("rows.model_output"), timesteps: [ts[5], ts[28]], previous: [ts[6], ts[29]],
            sample: try f.tensor("rows.sample"), noise: noise)
        expectClose(out, try f.tensor("rows.out"), tolerance: 1e-6, "rows at t[5] and t[28]")
    }

    @Test func configDecodes() throws {
        let cfg = try JSONDecoder().decode(
            DDPMWuerstchenSchedulerConfig.self,
            from: Data(#"{"_class_name": "DDPMWuerstchenScheduler", "scaler": 1.0, "s": 0.008}"#.utf8))
        #expect(cfg == DDPMWuerstchenSchedulerConfig())
        #expect(try JSONDecoder().decode(DDPMWuerstchenSchedulerConfig.self, from: Data("{}".utf8)) == DDPMWuerstchenSchedulerConfig())
    }

    /// `predictedOriginal` inverts the forward process: for x_t = sqrt(a) x0 + sqrt(1 - a) eps and the
    /// true noise eps it gives back x0, per row at its own timestep (tolerance 1e-4 absolute; float32).
    @Test func predictedOriginalRecoversTheCleanSample() {
        let scheduler = Scheduler()
        let g = TorchGenerator(seed: 3)
        let x0 = g.randn([2, 4, 4, 3]), eps = g.randn([2, 4, 4, 3])
        let ts: [Float] = [0.9, 0.25]
        let n = x0.count / 2
        var noisy = [Float](repeating: 0, count: x0.count)
        let x = x0.toArray(), e = eps.toArray()
        for row in 0..<2 {
            let a = scheduler.alphaCumprod(ts[row])
            for i in 0..<n { noisy[row * n + i] = a.squareRoot() * x[row * n + i] + (1 - a).squareRoot() * e[row * n + i] }
        }
        let got = scheduler.predictedOriginal(modelOutput: eps, timesteps: ts, sample: Tensor(shape: x0.shape, values: noisy)).toArray()
        let maxError = zip(got, x).map { abs($0 - $1) }.max() ?? 0
        #expect(maxError < 1e-4, "max error \(maxError)")
    }

    /// Previews at evenly spaced decoder steps, never the last, fewer when the steps are too few.
    @Test func previewStepsAreEvenlySpaced() {
        #expect(DenoisingJob.previewSteps(count: 0, steps: 12) == [])
        #expect(DenoisingJob.previewSteps(count: 1, steps: 12) == [6])
        #expect(DenoisingJob.previewSteps(count: 2, steps: 12) == [4, 8])
        #expect(DenoisingJob.previewSteps(count: 3, steps: 12) == [3, 6, 9])
        #expect(DenoisingJob.previewSteps(count: 3, steps: 8) == [2, 4, 6])
        #expect(DenoisingJob.previewSteps(count: 3, steps: 2) == [1])
        #expect(DenoisingJob.previewSteps(count: 2, steps: 1) == [])
    }
}
