import Foundation
import SafeTensors
import Testing
import Tensor
@testable import Wuerstchen

/// The shared blocks against diffusers' modules with random weights (scripts/fixtures/wuerstchen_common.py).
@Suite struct CommonBlockTests {
    static func weights(_ f: SafeTensorsFile, _ prefix: String) throws -> Weights {
        var out: [String: Tensor] = [:]
        for name in f.names where name.hasPrefix(prefix + ".") { out[name] = try f.tensor(name) }
        return Weights(tensors: out)
    }

    @Test func resBlock() throws {
        let f = try Fixture.load("common")
        let block = ResBlock(try Self.weights(f, "res"), "res")
        expectClose(block(try f.tensor("x")), try f.tensor("res.out"), tolerance: 1e-5, "ResBlock")
    }

    @Test func timestepBlock() throws {
        let f = try Fixture.load("common")
        let x = try f.tensor("x").copy()
        TimestepBlock(try Self.weights(f, "ts"), "ts").apply(x, try f.tensor("ts.t"))
        expectClose(x, try f.tensor("ts.out"), tolerance: 1e-5, "TimestepBlock")
    }

    @Test func attnBlock() throws {
        let f = try Fixture.load("common")
        let block = AttnBlock(try Self.weights(f, "attn"), "attn", heads: 4)
        let out = block(try f.tensor("x"), mappedKV: block.mapCondition(try f.tensor("attn.cond")))
        expectClose(out, try f.tensor("attn.out"), tolerance: 1e-5, "AttnBlock")
    }

    @Test func rEmbeddingMatchesGenREmbedding() throws {
        let f = try Fixture.load("common")
        let r = try f.tensor("r").toArray()
        // sin/cos of arguments up to 1e4 in float32: torch's vectorised sin/cos and libm differ by an ulp.
        expectClose(rEmbedding(r, cR: 16), try f.tensor("r_embed"), tolerance: 1e-6, "gen_r_embedding")
    }
}
