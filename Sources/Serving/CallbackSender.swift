import COpenSSL
import Foundation
import HTTP1
import JSON
import Logging

/// Job callbacks (`callback_url`): when a job ends, its status document is POSTed there as JSON,
/// signed the way Stripe signs webhooks, and retried with backoff.
///
/// The request: `POST <callback_url>`, `Content-Type: application/json`, `Wuerstchen-Job-Id: <id>`,
/// `Wuerstchen-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`, where the HMAC's key is
/// `jobs.callback_secret` and its message the bytes `<t>.<body>` (the decimal `t`, a `.`, then the body
/// exactly as sent). A receiver recomputes it, compares in constant time and refuses an old `t`.
/// Any 2xx answer delivers; anything else (or no answer within 10 s) is retried after 1, 2, 4, 8 s
/// (`attempts` in all, 5 by default), then given up and logged.
///
/// Only `http://` and `https://` URLs whose host is in `jobs.callback_hosts` are accepted (no open relay:
/// the server never POSTs to a host its operator did not name); `https://` verifies the receiver's
/// certificate against the system's CAs and its name. The host is matched by name as written in the URL;
/// an allowed name that resolves somewhere unexpected is the operator's DNS to control.
final class CallbackSender: @unchecked Sendable {
    private let hosts: [String]
    private let secret: [UInt8]
    private let metrics: ServingMetrics
    private let logger: Logger
    /// Tries per callback, and the first wait between them (doubled each time).
    let attempts: Int
    let firstBackoff: Double
    private let queue = DispatchQueue(label: "wuerstchen.callbacks", attributes: .concurrent)
    /// Callbacks not yet delivered or given up.
    private let pending = DispatchGroup()

    init(hosts: [String], secret: String, metrics: ServingMetrics, logger: Logger, attempts: Int = 5, firstBackoff: Double = 1) {
        self.hosts = hosts.map { $0.lowercased() }
        self.secret = Array(secret.utf8)
        self.metrics = metrics
        self.logger = logger
        self.attempts = attempts
        self.firstBackoff = firstBackoff
    }

    /// Whether `host` is allowed: listed exactly, or under a listed `*.domain`.
    func allows(host: String) -> Bool {
        let h = host.lowercased()
        return hosts.contains { pattern in
            pattern.hasPrefix("*.") ? h.hasSuffix(pattern.dropFirst(1)) && h.count > pattern.count - 1 : h == pattern
        }
    }

    /// Checks a request's `callback_url`: 400 naming the field unless it is an `http://` URL to an allowed host.
    func validate(_ url: String) throws(ServingError) {
        guard let parts = HTTPClient.parse(url) else {
            throw ServingError.invalid("callback_url", "callback_url must be an http:// or https:// URL (https://host[:port]/path), got '\(url.prefix(200))'")
        }
        guard allows(host: parts.host) else {
            throw ServingError.invalid("callback_url", "callback_url host '\(parts.host)' is not in the server's jobs.callback_hosts",
                                       code: "callback_host_not_allowed")
        }
    }

    /// `Wuerstchen-Signature`'s value for `body` sent at unix second `timestamp`.
    static func signature(body: [UInt8], timestamp: Int, secret: [UInt8]) -> String {
        let message = Array("\(timestamp).".utf8) + body
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        _ = HMAC(EVP_sha256(), secret, Int32(secret.count), message, message.count, &digest, &length)
        let hex = digest.prefix(Int(length)).map { String($0, radix: 16).leftPadded(to: 2) }.joined()
        return "t=\(timestamp),v1=\(hex)"
    }

    /// Waits until every callback sent so far is delivered or given up, or until `deadline`.
    func waitUntilSent(deadline: DispatchTime) {
        _ = pending.wait(timeout: deadline)
    }

    /// Sends `document` to `url` in the background, retrying with backoff.
    func send(_ document: JSONValue, to url: String, jobID: String) {
        let body = document.serializedBytes
        pending.enter()
        queue.async { [self] in
            defer { pending.leave() }
            var wait = firstBackoff
            for attempt in 1...attempts {
                let timestamp = Int(Date().timeIntervalSince1970)
                let headers = [("Content-Type", "application/json"), ("User-Agent", "wuerstchen"), ("Wuerstchen-Job-Id", jobID),
                               ("Wuerstchen-Signature", Self.signature(body: body, timestamp: timestamp, secret: secret))]
                let outcome: String
                do {
                    let response = try HTTPClient.post(url, headers: headers, body: body)
                    if (200..<300).contains(response.status) {
                        metrics.jobCallbacksDelivered.increment()
                        logger.info("job callback delivered", metadata: ["job_id": "\(jobID)", "attempt": "\(attempt)"])
                        return
                    }
                    outcome = "status \(response.status)"
                } catch {
                    outcome = "\(error)"
                }
                logger.warning("job callback failed", metadata: ["job_id": "\(jobID)", "attempt": "\(attempt)", "error": "\(outcome)"])
                if attempt < attempts {
                    Thread.sleep(forTimeInterval: wait)
                    wait *= 2
                }
            }
            metrics.jobCallbacksFailed.increment()
            logger.error("job callback given up", metadata: ["job_id": "\(jobID)", "attempts": "\(attempts)"])
        }
    }
}
