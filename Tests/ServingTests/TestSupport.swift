import Foundation
// Every file of the target sees the shared helpers (RawClient, Response, eventually).
@_exported import TestSupport
import HTTP1
import JSON
import Logging
import Testing
import Wuerstchen
@testable import Serving
#if canImport(Glibc)
import Glibc
#endif

/// The embedded demo model, built once for every test (its generate calls are serialised by the suites).
enum Demo {
    static let pipeline: WuerstchenPipeline = try! DemoModel.pipeline()
}

/// Log lines kept in memory, to check the access log.
final class LogCapture: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []

    var all: [String] {
        lock.lock()
        defer { lock.unlock() }
        return lines
    }

    func append(_ line: String) {
        lock.lock()
        lines.append(line)
        lock.unlock()
    }

    var logger: Logger {
        var logger = Logger(label: "test") { _ in CaptureHandler(capture: self) }
        logger.logLevel = .info
        return logger
    }

    struct CaptureHandler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .info
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            let meta = (event.metadata ?? [:]).map { "\($0)=\($1)" }.sorted().joined(separator: " ")
            capture.append("\(event.level) \(event.message) \(meta)")
        }
    }
}

/// A running server on 127.0.0.1 with a free port and the demo model behind the configured scheduler.
struct TestServer {
    let server: ImageServer
    let service: BatchingGenerationService?
    let logs: LogCapture
    var port: Int { server.port }
}

/// Runs `body` against a fresh server (`loaded: false` leaves it loading), then drains it.
func withServer(_ configure: (inout ServerConfiguration) -> Void = { _ in }, loaded: Bool = true,
                _ body: (TestServer) throws -> Void) throws {
    var config = ServerConfiguration()
    config.port = 0
    config.drainSeconds = 2
    configure(&config)
    let logs = LogCapture()
    let server = ImageServer(configuration: config, logger: logs.logger)
    try server.start()
    var service: BatchingGenerationService?
    if loaded {
        let s = BatchingGenerationService(pipeline: Demo.pipeline, policy: config.schedulerPolicy, metrics: server.metrics, logger: logs.logger)
        server.use(s)
        service = s
    }
    defer {
        let done = DispatchSemaphore(value: 0)
        server.shutdown { done.signal() }
        _ = done.wait(timeout: .now() + 30)
    }
    try body(TestServer(server: server, service: service, logs: logs))
}

/// A small request that the demo model answers quickly.
func smallRequest(_ extra: String = "") -> String {
    #"{"prompt": "a photo of a cat", "width": 128, "height": 128, "prior_steps": 2, "decoder_steps": 2, "seed": 7\#(extra)}"#
}

/// Server-sent events read from a chunked body as they arrive.
struct EventReader {
    let client: RawClient
    private var pending = ""

    init(client: RawClient) { self.client = client }

    /// The next `(event, data)`, or nil at the end of the stream.
    mutating func next() throws -> (event: String, data: JSONValue)? {
        while true {
            if let range = pending.range(of: "\n\n") {
                let block = String(pending[..<range.lowerBound])
                pending = String(pending[range.upperBound...])
                var event = "message", data: String?
                for line in block.split(separator: "\n") {
                    if line.hasPrefix("event: ") { event = String(line.dropFirst(7)) }
                    if line.hasPrefix("data: ") { data = (data ?? "") + line.dropFirst(6) }
                }
                // A block without data (comments only: the server's streaming probes) dispatches nothing.
                guard let data else { continue }
                return (event, try JSONValue.parse(Array(data.utf8)))
            }
            let chunk = try client.readChunk()
            if chunk.isEmpty { return nil }
            pending += String(decoding: chunk, as: UTF8.self)
        }
    }
}
