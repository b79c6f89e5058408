import ArgumentParser
import Foundation
import Logging
import Serving
import Tensor

/// `wuerstchen serve`: the HTTP API (ARCHITECTURE.md "HTTP (v1)") over the resident pipeline.
/// Configuration: defaults < `--config FILE` (or `WUERSTCHEN_CONFIG`) < `WUERSTCHEN_*` variables < flags.
struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the image API over HTTP.",
        discussion: "Prints `listening on http://HOST:PORT` on stdout once bound (with --port 0 the port is picked). SIGTERM or SIGINT drains: /readyz answers 503 at once, requests in flight finish (up to drain_seconds), then the process exits 0.")

    // Deliberate parallel of Generate.swift and ModelOptions.swift's options: strings, not ModelOptions, since
    // each flag is one more source for ServerConfiguration.load, which validates it with the file's and the
    // environment's values.
    @Option(help: "JSON configuration file (the defaults are Config/server.json's); WUERSTCHEN_CONFIG when omitted.")
    var config: String?

    @Option(help: "Address to bind (host).")
    var host: String?

    @Option(help: "Port to bind, 0 for any free one (port).")
    var port: String?

    @Option(help: "Prior pipeline folder; omit prior and decoder for the embedded demo model.")
    var prior: String?

    @Option(help: "Decoder pipeline folder.")
    var decoder: String?

    @Option(help: "Threads for OpenBLAS and the op pool, 0 for all cores.")
    var threads: String?

    @Option(help: "Numeric precision: fp32, bf16 (needs AVX512-BF16) or int8 (needs AVX2); else fp32 with a message.")
    var precision: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String?

    func run() throws {
        let environment = ProcessInfo.processInfo.environment
        var flags: [(key: String, flag: String, value: String)] = []
        for (key, flag, value) in [("host", "--host", host), ("port", "--port", port), ("prior", "--prior", prior),
                                   ("decoder", "--decoder", decoder), ("threads", "--threads", threads),
                                   ("precision", "--precision", precision), ("log_level", "--log-level", logLevel)] {
            if let value { flags.append((key, flag, value)) }
        }
        let settings: ServerConfiguration
        do {
            settings = try ServerConfiguration.load(file: config ?? environment["WUERSTCHEN_CONFIG"], environment: environment, flags: flags)
        } catch let error as ConfigurationError {
            throw ValidationError(error.description)
        }

        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        var logger = Logger(label: "wuerstchen.serve")
        logger.logLevel = Logger.Level(rawValue: settings.logLevel) ?? .info

        let server = ImageServer(configuration: settings, logger: logger)
        try server.start()
        let scheme = settings.tls == nil ? "http" : "https"
        FileHandle.standardOutput.write(Data("listening on \(scheme)://\(settings.host):\(server.port)\n".utf8))

        // Signals arrive on a queue of their own: the main thread is busy loading the models.
        let signalQueue = DispatchQueue(label: "wuerstchen.signals")
        var sources: [DispatchSourceSignal] = []
        let received = ManagedAtomicFlag()
        for sig in [SIGTERM, SIGINT] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: signalQueue)
            source.setEventHandler {
                if received.setIfFirst() {
                    logger.notice("received \(sig == SIGTERM ? "SIGTERM" : "SIGINT")")
                    server.shutdown { Foundation.exit(0) }
                } else {
                    logger.warning("second signal: exiting without waiting for the drain")
                    Foundation.exit(1)
                }
            }
            source.resume()
            sources.append(source)
        }

        // The configuration was validated as it loaded (both folders or neither, a known precision, threads >= 0).
        let loader = PipelineLoader(prior: settings.prior, decoder: settings.decoder,
                                    precision: Precision(rawValue: settings.precision) ?? .fp32, threads: settings.threads)
        do {
            try server.loadModel { try loader.load() }
        } catch {
            logger.critical("cannot serve without models: \(error)")
            Foundation.exit(1)
        }
        withExtendedLifetime(sources) { dispatchMain() }
    }
}
