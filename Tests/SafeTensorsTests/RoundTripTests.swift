import Foundation
import Testing
import Tensor
@testable import SafeTensors

@Suite struct RoundTripTests {
    @Test func writeThenRead() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("rt-\(UUID()).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        let a = Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
        try SafeTensorsWriter.write(["a": a], metadata: ["format": "pt"], to: url)
        let f = try SafeTensorsFile(url: url)
        #expect(f.metadata["format"] == "pt")
        #expect(try f.tensor("a").toArray() == a.toArray())
    }
}
