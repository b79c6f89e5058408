import Foundation
import Imaging
import Testing

/// `wuerstchen inspect` and `generate --from`, `--output x.jpg|x.webp`, `--output-compression`, `--no-metadata`
/// as a user runs them (the built executable, the embedded demo model at 128 px).
@Suite struct InspectCommandTests {
    typealias G = GenerateCommandTests

    static func generate(_ arguments: [String]) throws -> String {
        let (status, _, err) = try G.run(["generate", "--width", "128", "--height", "128", "--prior-steps", "2", "--decoder-steps", "2"] + arguments)
        #expect(status == 0, "generate \(arguments) failed: \(err)")
        return err
    }

    static func inspect(_ path: URL) throws -> [String: Any] {
        let (status, out, err) = try G.run(["inspect", path.path])
        #expect(status == 0, "inspect failed: \(err)")
        return try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any] ?? [:]
    }

    static func pixels(_ path: URL) throws -> DecodedImage { try ImageDecoder.decode(Data(contentsOf: path)) }

    @Test func fromReproducesThePixelsInEveryFormat() throws {
        let dir = try G.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let a = dir.appendingPathComponent("a.png")
        // No --seed: the one drawn is printed and recorded.
        let log = try Self.generate(["--prompt", "a red circle on a blue background", "--negative-prompt", "noise", "--output", a.path])
        let stored = try Self.inspect(a)
        let seed = try #require((stored["seed"] as? NSNumber)?.uint64Value)
        #expect(log.contains("seed \(seed)"), "the printed seed must be the recorded one: \(log)")
        #expect(stored["prompt"] as? String == "a red circle on a blue background" && stored["negative_prompt"] as? String == "noise")
        #expect(stored["width"] as? Int == 128 && stored["prior_steps"] as? Int == 2 && stored["decoder_steps"] as? Int == 2)
        #expect(stored["model"] as? String == "wuerstchen-v2-demo" && stored["version"] is String && stored["precision"] as? String == "fp32")
        #expect(stored["output_format"] as? String == "png")

        let b = dir.appendingPathComponent("b.png")
        _ = try Self.generate(["--from", a.path, "--output", b.path])
        #expect(try Data(contentsOf: a) == Data(contentsOf: b), "--from must write the same file")

        // Other formats from the extension: WebP at 100 is lossless, JPEG close; --from a JPEG gives the same JPEG.
        let w = dir.appendingPathComponent("c.webp"), j = dir.appendingPathComponent("d.jpg"), j2 = dir.appendingPathComponent("e.jpeg")
        _ = try Self.generate(["--from", a.path, "--output", w.path])
        _ = try Self.generate(["--from", a.path, "--output", j.path, "--output-compression", "85"])
        #expect(try Self.pixels(w).format == .webp && Self.pixels(w).rgb == Self.pixels(a).rgb)
        let jpeg = try Self.pixels(j)
        #expect(jpeg.format == .jpeg && jpeg.width == 128)
        #expect(try Self.inspect(j)["output_compression"] as? Int == 85)
        _ = try Self.generate(["--from", j.path, "--output", j2.path])
        #expect(try Data(contentsOf: j) == Data(contentsOf: j2), "--from a JPEG keeps its format's compression")
        #expect((try Self.inspect(w)["seed"] as? NSNumber)?.uint64Value == seed)

        // Flags override the stored parameters.
        let f = dir.appendingPathComponent("f.png")
        _ = try Self.generate(["--from", a.path, "--seed", "5", "--output", f.path])
        #expect((try Self.inspect(f)["seed"] as? NSNumber)?.uint64Value == 5)
        #expect(try Self.pixels(f).rgb != Self.pixels(a).rgb)
    }

    @Test func secondImageOfABatchIsReproducedAlone() throws {
        let dir = try G.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        _ = try Self.generate(["--prompt", "a white ring on a black background", "--seed", "3", "--num-images", "2",
                               "--output", dir.appendingPathComponent("batch.png").path])
        let second = dir.appendingPathComponent("batch-1.png")
        #expect(try Self.inspect(second)["image_index"] as? Int == 1)
        let again = dir.appendingPathComponent("again.png")
        _ = try Self.generate(["--from", second.path, "--output", again.path])
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("again-0.png").path), "only image 1 is written")
        #expect(try Self.pixels(again).rgb == Self.pixels(second).rgb)
    }

    @Test func noMetadataAndErrors() throws {
        let dir = try G.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let plain = dir.appendingPathComponent("plain.webp")
        _ = try Self.generate(["--prompt", "secret prompt", "--seed", "1", "--no-metadata", "--output", plain.path])
        #expect(!String(decoding: try Data(contentsOf: plain), as: UTF8.self).contains("secret prompt"))
        let (s1, _, e1) = try G.run(["inspect", plain.path])
        #expect(s1 != 0 && e1.contains("no wuerstchen parameters") && !e1.contains("Usage"), "\(e1)")
        let (s2, _, e2) = try G.run(["generate", "--from", plain.path, "--output", dir.appendingPathComponent("x.png").path])
        #expect(s2 != 0 && e2.contains("no wuerstchen parameters"), "\(e2)")
        let (s3, _, e3) = try G.run(["generate", "--prompt", "x", "--output", dir.appendingPathComponent("x.gif").path])
        #expect(s3 != 0 && e3.contains(".gif") && e3.contains(".webp"), "\(e3)")
        let (s4, _, e4) = try G.run(["generate", "--prompt", "x", "--output-compression", "101", "--output", dir.appendingPathComponent("x.jpg").path])
        #expect(s4 != 0 && e4.contains("--output-compression"), "\(e4)")
        let (s5, _, e5) = try G.run(["generate", "--output", dir.appendingPathComponent("x.png").path])
        #expect(s5 != 0 && e5.contains("--prompt"), "\(e5)")
        let text = dir.appendingPathComponent("t.png")
        try Data("not an image".utf8).write(to: text)
        let (s6, _, e6) = try G.run(["inspect", text.path])
        #expect(s6 != 0 && e6.contains("not a PNG, JPEG or WebP"), "\(e6)")
    }
}
