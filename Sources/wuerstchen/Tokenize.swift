import ArgumentParser
import CLIP
import Foundation
import JSON

/// `wuerstchen tokenize`: the 77 ids transformers' CLIPTokenizer gives each text, one JSON array a line.
struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print CLIP token ids (77 per text, padded), one JSON array per line.")

    @Option(help: "Tokenizer folder (tokenizer.json, or vocab.json + merges.txt); default: the embedded CLIP vocabulary.")
    var tokenizer: String?

    @Argument(help: "Texts to tokenize.")
    var texts: [String]

    func run() throws {
        let tok = try tokenizer.map { try CLIPTokenizer(directory: URL(fileURLWithPath: $0)) } ?? CLIPTokenizer.embedded
        for text in texts {
            let encoded = tok.encode(text)
            print(JSONValue.array(encoded.ids.map { .int($0) }).serialized)
            if encoded.truncated {
                log("truncated to \(tok.maxLength) tokens (\(encoded.untruncatedCount) before truncation): \(text.prefix(60))")
            }
        }
    }
}
