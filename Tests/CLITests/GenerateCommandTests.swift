import Foundation
import Imaging
import SafeTensors
import Testing
import TestSupport
import Tensor

/// `wuerstchen generate` and `tokenize` as a user runs them: the built executable in a subprocess.
@Suite struct GenerateCommandTests {
    /// Runs the executable; returns (status, stdout, stderr).
    static func run(_ arguments: [String], environment: [String: String] = [:]) throws -> (Int32, String, String) {
        let p = Process()
        p.executableURL = try productExecutable()
        p.arguments = arguments
        if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../WuerstchenTests/Fixtures/pipeline").standardized

    static func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("wuerstchen-cli-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    /// The diffusers request `decoder_cfg_two_images` (2 images, negative prompt, decoder guidance 2.5)
    /// through the CLI, from a Paddle-layout and a diffusers-layout folder: both PNGs within 2 levels of
    /// diffusers' pixels, the embeddings file as diffusers' `image_embeddings`.
    @Test(arguments: ["paddle", "fp32"])
    func reproducesDiffusersThroughTheCLI(_ layout: String) throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (status, _, err) = try Self.run([
            "generate", "--prior", Self.fixtures.appendingPathComponent("prior-\(layout)").path,
            "--decoder", Self.fixtures.appendingPathComponent("decoder-\(layout)").path,
            "--prompt", "an astronaut riding a horse", "--negative-prompt", "ugly", "--width", "128", "--height", "128",
            "--seed", String(UInt64(1) << 40 + 3), "--prior-steps", "3", "--prior-guidance", "2", "--decoder-steps", "4",
            "--decoder-guidance", "2.5", "--num-images", "2", "--output", dir.appendingPathComponent("out.png").path,
            "--prior-output", dir.appendingPathComponent("emb.safetensors").path,
        ])
        #expect(status == 0, "generate failed: \(err)")
        let expected = try SafeTensorsFile(url: Self.fixtures.appendingPathComponent("expected.safetensors"))
        let pixels = try expected.tensor("decoder_cfg_two_images.pixels")  // [2, 128, 128, 3]
        for i in 0..<2 {
            let png = try Data(contentsOf: dir.appendingPathComponent("out-\(i).png"))
            let decoded = try PNGDecoder.decode(png)
            #expect(decoded.width == 128 && decoded.height == 128)
            let per = 128 * 128 * 3
            let worst = (0..<per).map { abs(Float(decoded.rgb[$0]) - pixels[flat: i * per + $0]) }.max()!
            print("\(layout) image \(i): at most \(worst) levels from diffusers (tolerance 2)")
            #expect(worst <= 2)
        }
        let emb = try SafeTensorsFile(url: dir.appendingPathComponent("emb.safetensors"))
        #expect(emb.names == ["image_embeddings"])
        let mine = try emb.tensor("image_embeddings"), ref = try expected.tensor("decoder_cfg_two_images.image_embeddings")
        #expect(mine.shape == [2, 16, 3, 3])
        let err1 = zip(mine.toArray(), ref.toArray()).map { abs($0 - $1) }.max()! / ref.toArray().map(abs).max()!
        #expect(err1 < 1e-3, "image embeddings relative error \(err1)")
    }

    @Test func demoModelWritesAPNGOnAFreshCheckout() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("x.png")
        let (status, _, err) = try Self.run(["generate", "--prompt", "a red circle on a blue background", "--width", "128", "--height", "128",
                                             "--prior-steps", "2", "--decoder-steps", "2", "--output", out.path])
        #expect(status == 0, "\(err)")
        #expect(err.contains("demo model") && err.contains("a red circle on a blue background"), "the demo model must say what it draws")
        #expect(err.contains("seed "), "a random seed must be reported")
        let decoded = try PNGDecoder.decode(try Data(contentsOf: out))
        #expect(decoded.width == 128 && decoded.height == 128)
    }

    /// A narrow precision on the fixture folders (three sampler steps with guidance): the images stay within
    /// `tolerance` levels of diffusers' fp32 pixels (bf16 8, int8 32); where the CPU (or `ONEDNN_MAX_CPU_ISA`, as
    /// in each case's second run) lacks the ISA it needs, the program says so and runs fp32, which then matches
    /// within 2 levels. A precision that does not exist is refused, naming the choices.
    @Test(arguments: [
        ("bf16", ["ONEDNN_MAX_CPU_ISA": "AVX512_CORE"], Float(8), "needs AVX512-BF16", Precision.bfloat16Supported),
        ("int8", ["ONEDNN_MAX_CPU_ISA": "SSE41"], Float(32), "precision int8 needs AVX2", Precision.int8Supported),
    ])
    func narrowPrecisionAndItsFallback(
        precision: String, fallbackEnvironment: [String: String], tolerance: Float, fallbackMessage: String, supported: Bool
    ) throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let expected = try SafeTensorsFile(url: Self.fixtures.appendingPathComponent("expected.safetensors"))
        let pixels = try expected.tensor("decoder_cfg_two_images.pixels")  // [2, 128, 128, 3]
        for environment in [[String: String](), fallbackEnvironment] {
            let out = dir.appendingPathComponent("\(precision).png")
            let (status, _, err) = try Self.run([
                "generate", "--prior", Self.fixtures.appendingPathComponent("prior-fp32").path,
                "--decoder", Self.fixtures.appendingPathComponent("decoder-fp32").path, "--precision", precision,
                "--prompt", "an astronaut riding a horse", "--negative-prompt", "ugly", "--width", "128", "--height", "128",
                "--seed", String(UInt64(1) << 40 + 3), "--prior-steps", "3", "--prior-guidance", "2", "--decoder-steps", "4",
                "--decoder-guidance", "2.5", "--num-images", "2", "--output", out.path,
            ], environment: environment)
            #expect(status == 0, "generate --precision \(precision) failed: \(err)")
            let ran = err.contains("(\(precision))")
            #expect(ran == !err.contains(fallbackMessage), "either \(precision) runs or the fallback is announced: \(err)")
            #expect(ran == (supported && environment.isEmpty), "\(err)")
            let decoded = try PNGDecoder.decode(try Data(contentsOf: dir.appendingPathComponent("\(precision)-0.png")))
            let per = 128 * 128 * 3
            let worst = (0..<per).map { abs(Float(decoded.rgb[$0]) - pixels[flat: $0]) }.max()!
            let limit = ran ? tolerance : 2
            print("generate --precision \(precision) (\(ran ? precision : "fell back to fp32")): at most \(worst) levels from diffusers fp32 (tolerance \(limit))")
            #expect(worst <= limit)
        }
        let (s, _, e) = try Self.run(["generate", "--prompt", "x", "--precision", "int4", "--output", "/tmp/never.png"])
        #expect(s != 0 && e.contains("fp32, bf16 or int8"), "\(e)")
    }

    @Test func badSizesAndFlagsFailWithAMessage() throws {
        let (status, _, err) = try Self.run(["generate", "--prompt", "x", "--width", "1100", "--output", "/tmp/never.png"])
        #expect(status != 0)
        #expect(err.contains("width 1100") && err.contains("1024") && err.contains("1110"), "\(err)")
        let (s2, _, e2) = try Self.run(["generate", "--prompt", "x", "--prior", "/nonexistent", "--output", "/tmp/never.png"])
        #expect(s2 != 0 && e2.contains("--decoder"), "\(e2)")
    }

    @Test func tokenizePrintsSeventySevenIdsPerText() throws {
        let (status, out, _) = try Self.run(["tokenize", "a photo of a cat", "hello"])
        #expect(status == 0)
        let lines = out.split(separator: "\n")
        #expect(lines.count == 2)
        let ids = try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as! [Int]
        #expect(ids.count == 77)
        #expect(Array(ids.prefix(7)) == [49406, 320, 1125, 539, 320, 2368, 49407])
    }
}
