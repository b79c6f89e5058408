import Foundation
import Testing
@testable import HTTP1

/// The outbound client against this module's own server on loopback.
@Suite struct HTTPClientTests {
    @Test func postsAndReadsTheAnswer() throws {
        let seen = Locked<[(String, String?, [UInt8])]>([])
        let handler = ClosureHandler { request, response in
            seen.withValue { $0.append((request.target, request.headers["X-Sig"], request.body)) }
            response.respond(status: 201, headers: [("Content-Type", "text/plain")], body: Array("made".utf8))
        }
        try withServer(handler: handler) { server in
            let body = Array(#"{"a":1}"#.utf8)
            let r = try HTTPClient.post("http://127.0.0.1:\(server.port)/hook?x=1", headers: [("X-Sig", "t=1,v1=ab")], body: body)
            #expect(r.status == 201 && r.body == Array("made".utf8))
            let got = seen.get
            #expect(got.count == 1 && got[0].0 == "/hook?x=1" && got[0].1 == "t=1,v1=ab" && got[0].2 == body)
        }
    }

    @Test func failuresNameTheHost() {
        // Port 9 (discard) on loopback is closed here: connection refused, named.
        do {
            _ = try HTTPClient.post("http://127.0.0.1:9/x", headers: [], body: [], timeout: 2)
            Issue.record("expected a connection error")
        } catch {
            #expect(error.description.contains("127.0.0.1:9"), "\(error)")
        }
        #expect(throws: HTTPClientError.self) { _ = try HTTPClient.post("ftp://127.0.0.1/x", headers: [], body: []) }
    }

    /// https against the module's TLS server: the test certificate trusted, the IP checked; an untrusted
    /// certificate fails the handshake, naming why.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl")))
    func postsOverTLSAndVerifiesThePeer() throws {
        let (tls, dir) = try makeSelfSignedCertificate()
        defer { try? FileManager.default.removeItem(at: dir) }
        try withServer(tls: tls) { server in
            let r = try HTTPClient.post("https://127.0.0.1:\(server.port)/hook", headers: [], body: Array("x".utf8), trusting: tls.certificatePath)
            #expect(r.status == 200 && String(decoding: r.body, as: UTF8.self) == "POST /hook x")
            do {
                _ = try HTTPClient.post("https://127.0.0.1:\(server.port)/hook", headers: [], body: [], timeout: 5)
                Issue.record("a self-signed certificate must not verify against the system's CAs")
            } catch {
                #expect("\(error)".contains("TLS handshake"), "\(error)")
            }
        }
    }

    @Test func parsesOnlyHTTPAndHTTPSURLs() {
        #expect(HTTPClient.parse("http://Example.com:8080/a/b?c=d#frag").map { "\($0.host) \($0.port) \($0.path)" } == "example.com 8080 /a/b?c=d")
        #expect(HTTPClient.parse("http://h?q=1")?.path == "/?q=1")
        #expect(HTTPClient.parse("http://[::1]/")?.host == "::1")
        #expect(HTTPClient.parse("https://h/x") == HTTPClient.Target(isTLS: true, host: "h", port: 443, path: "/x"))
        for bad in ["ftp://h/", "http://", "https://", "http://u:p@h/", "http://h:99999/", "http://h:x/", "http://h/a b", "mailto:x@y"] {
            #expect(HTTPClient.parse(bad) == nil, "\(bad)")
        }
    }
}
