import COpenSSL
import Foundation
import Testing
@testable import HTTP1
#if canImport(Glibc)
import Glibc
#endif

/// A self-signed P-256 certificate for 127.0.0.1 made with the `openssl` command line, in a fresh folder.
func makeSelfSignedCertificate() throws -> (HTTPTLSConfiguration, URL) {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("http1-tls-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let cert = dir.appendingPathComponent("cert.pem").path, key = dir.appendingPathComponent("key.pem").path
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
    p.arguments = ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                   "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost",
                   "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"]
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    try p.run()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else { throw ClientError(description: "openssl req failed") }
    return (HTTPTLSConfiguration(certificatePath: cert, keyPath: key), dir)
}

/// A blocking TLS client (OpenSSL) that trusts exactly the test certificate and checks the IP in it.
final class TLSTestClient {
    let client: RawClient
    private let context: OpaquePointer
    private let ssl: OpaquePointer

    init(port: Int, trusting certificatePath: String) throws {
        client = try RawClient(port: port, timeout: 5)
        guard let ctx = SSL_CTX_new(TLS_client_method()) else { throw ClientError(description: "SSL_CTX_new") }
        context = ctx
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nil)
        guard SSL_CTX_load_verify_locations(ctx, certificatePath, nil) == 1, let s = SSL_new(ctx) else {
            SSL_CTX_free(ctx)
            throw ClientError(description: "cannot load the test certificate")
        }
        ssl = s
        SSL_set_fd(s, client.fd)
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s), "127.0.0.1")
        guard SSL_connect(s) == 1 else {
            throw ClientError(description: "TLS handshake failed: \(openSSLErrorString())")
        }
        client.tlsRead = { buffer, count in Int(SSL_read(s, buffer, Int32(count))) }
        client.tlsWrite = { buffer, count in Int(SSL_write(s, buffer, Int32(count))) }
    }

    /// The negotiated protocol, e.g. `TLSv1.3`.
    var version: String { String(cString: SSL_get_version(ssl)) }

    deinit {
        SSL_free(ssl)
        SSL_CTX_free(context)
    }
}

@Suite("HTTPTLS", .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl")))
struct HTTPTLSTests {
    @Test func requestsOverTLS() throws {
        let (tls, dir) = try makeSelfSignedCertificate()
        defer { try? FileManager.default.removeItem(at: dir) }
        let big = ClosureHandler { request, response in
            if request.path == "/big" {
                response.writeHead(status: 200)
                for _ in 0..<64 { try? response.write([UInt8](repeating: 0x41, count: 32 * 1024)) }
                response.finish()
            } else {
                echoHandler.handle(request, response)
            }
        }
        try withServer(tls: tls, handler: big) { server in
            let t = try TLSTestClient(port: server.port, trusting: tls.certificatePath)
            print("TLS negotiated \(t.version)")
            #expect(t.version.hasPrefix("TLSv1."))
            #expect(try t.client.request("GET /secure HTTP/1.1\nHost: t\n\n").text == "GET /secure ")
            #expect(try t.client.request("POST /c HTTP/1.1\nHost: t\nTransfer-Encoding: chunked\n\n3\nabc\n0\n\n").text == "POST /c abc")
            let r = try t.client.request("GET /big HTTP/1.1\nHost: t\n\n")
            #expect(r.body.count == 64 * 32 * 1024 && r.body.allSatisfy { $0 == 0x41 })
            // Pipelined over TLS.
            t.client.send("GET /1 HTTP/1.1\nHost: t\n\nGET /2 HTTP/1.1\nHost: t\n\n")
            #expect(try t.client.readResponse().text == "GET /1 ")
            #expect(try t.client.readResponse().text == "GET /2 ")
            // A malformed request over TLS gets its JSON error.
            #expect(try t.client.request("GET / HTTP/1.1\nHost: t\nBad Header: 1\n\n").status == 400)
        }
    }

    @Test func badClientsDoNotHurtTheTLSServer() throws {
        let (tls, dir) = try makeSelfSignedCertificate()
        defer { try? FileManager.default.removeItem(at: dir) }
        var limits = HTTPLimits()
        limits.headerTimeout = 0.5
        try withServer(limits: limits, tls: tls) { server in
            // Plain HTTP to the TLS port: the handshake fails and the connection closes.
            let plain = try RawClient(port: server.port, timeout: 5)
            plain.send("GET / HTTP/1.1\nHost: t\n\n")
            #expect(plain.isClosedByServer())
            // A client that never starts the handshake is closed by the header timeout (when: the state
            // machine's clock-injected `deadlines` test; here only that it is, within the receive timeout).
            let silent = try RawClient(port: server.port, timeout: 5)
            #expect(silent.isClosedByServer())
            // The server still serves TLS.
            let t = try TLSTestClient(port: server.port, trusting: tls.certificatePath)
            #expect(try t.client.request("GET /ok HTTP/1.1\nHost: t\n\n").status == 200)
        }
    }

    @Test func missingCertificateFailsStartWithItsPath() throws {
        let server = HTTPServer(configuration: HTTPServerConfiguration(
            port: 0, tls: HTTPTLSConfiguration(certificatePath: "/nonexistent/cert.pem", keyPath: "/nonexistent/key.pem")),
            handler: echoHandler)
        #expect { try server.start() } throws: { "\($0)".contains("/nonexistent/cert.pem") }
    }
}
