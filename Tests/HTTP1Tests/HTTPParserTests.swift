import Foundation
import Testing
@testable import HTTP1

/// Events with consecutive body parts merged, so results of different splits compare equal.
func normalized(_ events: [HTTPParserEvent]) -> [HTTPParserEvent] {
    var out: [HTTPParserEvent] = []
    for e in events {
        if case .body(let b) = e, case .body(let a)? = out.last {
            out[out.count - 1] = .body(a + b)
        } else {
            out.append(e)
        }
    }
    return out
}

func parseAll(_ bytes: [UInt8], limits: HTTPLimits = HTTPLimits(), eof: Bool = false) -> [HTTPParserEvent] {
    var p = HTTPParser(limits: limits)
    var events = p.feed(bytes)
    if eof, let e = p.finish() { events.append(e) }
    return normalized(events)
}

func head(_ events: [HTTPParserEvent]) -> HTTPRequestHead? {
    for e in events { if case .head(let h) = e { return h } }
    return nil
}

func errorStatus(_ events: [HTTPParserEvent]) -> Int? {
    if case .error(let e)? = events.last { return e.status }
    return nil
}

@Suite("HTTPParser")
struct HTTPParserTests {
    @Test func simpleGet() throws {
        let ev = parseAll(crlf("GET /a%20b?x=1&y=a+b HTTP/1.1\nHost: example.com\nAccept:  */* \n\n"))
        #expect(ev.count == 2)
        let h = try #require(head(ev))
        #expect(h.method == "GET" && h.target == "/a%20b?x=1&y=a+b" && h.version == .http1_1)
        #expect(h.headers["ACCEPT"] == "*/*" && h.headers["host"] == "example.com")
        #expect(h.keepAlive && !h.expectsContinue && h.bodyFraming == .none)
        #expect(ev.last == .end(trailers: HTTPHeaders()))
        let r = HTTPRequest(head: h, body: [], remoteAddress: "127.0.0.1:1")
        #expect(r.path == "/a b" && r.rawPath == "/a%20b" && r.query == "x=1&y=a+b")
        #expect(r.queryItems == [HTTPQueryItem(name: "x", value: "1"), HTTPQueryItem(name: "y", value: "a b")])
        #expect(r.queryValue("y") == "a b")
    }

    @Test func keepAliveRules() throws {
        let h10 = try #require(head(parseAll(crlf("GET / HTTP/1.0\n\n"))))
        #expect(h10.version == .http1_0 && !h10.keepAlive)
        let h10ka = try #require(head(parseAll(crlf("GET / HTTP/1.0\nConnection: Keep-Alive\n\n"))))
        #expect(h10ka.keepAlive)
        let h11c = try #require(head(parseAll(crlf("GET / HTTP/1.1\nHost: a\nConnection: foo, close\n\n"))))
        #expect(!h11c.keepAlive)
        let h12 = try #require(head(parseAll(crlf("GET / HTTP/1.2\nHost: a\n\n"))))
        #expect(h12.version == .http1_1 && h12.keepAlive)
    }

    @Test func variousWellFormed() throws {
        // OPTIONS *, leading empty line, repeated fields, obs-text, HEAD, empty Host, unknown method.
        #expect(head(parseAll(crlf("OPTIONS * HTTP/1.1\nHost: a\n\n")))?.target == "*")
        #expect(head(parseAll(crlf("\nGET / HTTP/1.1\nHost: a\n\n")))?.method == "GET")
        let h = try #require(head(parseAll(crlf("GET / HTTP/1.1\nHost: a\nX: 1\nx: 2\nY: caf\u{e9}\n\n"))))
        #expect(h.headers.values("X") == ["1", "2"] && h.headers.count == 4)
        #expect(head(parseAll(crlf("HEAD / HTTP/1.1\nHost:\n\n")))?.method == "HEAD")
        #expect(head(parseAll(crlf("PURGE /x HTTP/1.1\nHost: [::1]:80\n\n")))?.method == "PURGE")
    }

    @Test func contentLengthBody() throws {
        let ev = parseAll(crlf("POST /p HTTP/1.1\nHost: a\nContent-Length: 5\nContent-Length: 5, 5\n\nhello"))
        #expect(head(ev)?.bodyFraming == .length(5))
        #expect(Array(ev.dropFirst()) == [.body(Array("hello".utf8)), .end(trailers: HTTPHeaders())])
        // Content-Length: 0 is no body.
        #expect(parseAll(crlf("POST / HTTP/1.1\nHost: a\nContent-Length: 0\n\n")).count == 2)
    }

    @Test func chunkedBodyWithExtensionsAndTrailers() throws {
        let raw = crlf("POST /c HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n\n5;name=val;x\nhello\nA \n0123456789\n0\nX-Sum: 1\nX-Two: 2\n\n")
        let ev = parseAll(raw)
        #expect(head(ev)?.bodyFraming == .chunked)
        #expect(Array(ev.dropFirst()) == [.body(Array("hello0123456789".utf8)),
                                          .end(trailers: HTTPHeaders([("X-Sum", "1"), ("X-Two", "2")]))])
    }

    @Test func expectContinue() throws {
        let h = try #require(head(parseAll(crlf("POST / HTTP/1.1\nHost: a\nExpect: 100-Continue\nContent-Length: 3\n\n"))))
        #expect(h.expectsContinue)
        let h10 = try #require(head(parseAll(crlf("POST / HTTP/1.0\nExpect: 100-continue\nContent-Length: 3\n\n"))))
        #expect(!h10.expectsContinue)
    }

    @Test func pipelinedRequestsKeepNextBytes() throws {
        var p = HTTPParser()
        p.append(crlf("GET /1 HTTP/1.1\nHost: a\n\nGET /2 HTTP/1.1\nHost: a\n\nGET /3 HT"))
        guard case .head(let h1)? = p.next() else { Issue.record("no head"); return }
        #expect(h1.target == "/1")
        #expect(p.next() == .end(trailers: HTTPHeaders()))
        #expect(p.bufferedByteCount > 0 && !p.isAtMessageBoundary)
        guard case .head(let h2)? = p.next() else { Issue.record("no head 2"); return }
        #expect(h2.target == "/2")
        #expect(p.next() == .end(trailers: HTTPHeaders()))
        #expect(p.next() == nil)
        let rest = p.feed(crlf("TP/1.1\nHost: a\n\n"))
        #expect(head(rest)?.target == "/3")
        #expect(p.isAtMessageBoundary)
    }

    /// Every malformed input with the status it must get.
    static let malformed: [(String, String, Int)] = [
        ("double space", "GET  / HTTP/1.1\nHost: a\n\n", 400),
        ("trailing space", "GET / HTTP/1.1 \nHost: a\n\n", 400),
        ("HTTP/0.9 line", "GET /\n\n", 400),
        ("method not a token", "G@T / HTTP/1.1\nHost: a\n\n", 400),
        ("empty method", " / HTTP/1.1\nHost: a\n\n", 400),
        ("absolute-form", "GET http://a/ HTTP/1.1\nHost: a\n\n", 400),
        ("space in target", "GET /a b HTTP/1.1\nHost: a\n\n", 400),
        ("bad percent", "GET /%zz HTTP/1.1\nHost: a\n\n", 400),
        ("short percent", "GET /a% HTTP/1.1\nHost: a\n\n", 400),
        ("angle brackets", "GET /<x> HTTP/1.1\nHost: a\n\n", 400),
        ("fragment", "GET /#x HTTP/1.1\nHost: a\n\n", 400),
        ("asterisk with GET", "GET * HTTP/1.1\nHost: a\n\n", 400),
        ("HTTP/2.0", "GET / HTTP/2.0\nHost: a\n\n", 505),
        ("HTTP/0.9", "GET / HTTP/0.9\nHost: a\n\n", 505),
        ("short version", "GET / HTTP/1\nHost: a\n\n", 400),
        ("lowercase version", "GET / http/1.1\nHost: a\n\n", 400),
        ("missing host", "GET / HTTP/1.1\n\n", 400),
        ("two hosts", "GET / HTTP/1.1\nHost: a\nHost: b\n\n", 400),
        ("bad host", "GET / HTTP/1.1\nHost: a/b\n\n", 400),
        ("space before colon", "GET / HTTP/1.1\nHost : a\n\n", 400),
        ("obs-fold", "GET / HTTP/1.1\nHost: a\nX: 1\n  2\n\n", 400),
        ("no colon", "GET / HTTP/1.1\nHost: a\nJunk\n\n", 400),
        ("empty field name", "GET / HTTP/1.1\nHost: a\n: x\n\n", 400),
        ("NUL in value", "GET / HTTP/1.1\nHost: a\nX: a\u{0}b\n\n", 400),
        ("bare CR in value", "GET / HTTP/1.1\nHost: a\nX: a\rb\n\n", 400),
        ("expectation", "POST / HTTP/1.1\nHost: a\nExpect: later\nContent-Length: 1\n\nx", 417),
        ("CL not a number", "POST / HTTP/1.1\nHost: a\nContent-Length: abc\n\n", 400),
        ("CL negative", "POST / HTTP/1.1\nHost: a\nContent-Length: -1\n\n", 400),
        ("CL plus", "POST / HTTP/1.1\nHost: a\nContent-Length: +1\n\n", 400),
        ("CL empty", "POST / HTTP/1.1\nHost: a\nContent-Length: \n\n", 400),
        ("CL list disagrees", "POST / HTTP/1.1\nHost: a\nContent-Length: 1, 2\n\n", 400),
        ("CL fields disagree", "POST / HTTP/1.1\nHost: a\nContent-Length: 1\nContent-Length: 2\n\n", 400),
        ("CL empty list element", "POST / HTTP/1.1\nHost: a\nContent-Length: 1,\n\n", 400),
        ("CL overflow", "POST / HTTP/1.1\nHost: a\nContent-Length: 99999999999999999999999\n\n", 413),
        ("CL over limit", "POST / HTTP/1.1\nHost: a\nContent-Length: 2000000\n\n", 413),
        ("TE and CL", "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\nContent-Length: 3\n\n", 400),
        ("chunked not final", "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked, gzip\n\n", 400),
        ("only gzip", "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: gzip\n\n", 400),
        ("gzip then chunked", "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: gzip, chunked\n\n", 501),
        ("chunked twice", "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\nTransfer-Encoding: chunked\n\n", 400),
        ("TE in HTTP/1.0", "POST / HTTP/1.0\nTransfer-Encoding: chunked\n\n", 400),
        ("chunk size not hex", "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n\nzz\n", 400),
        ("chunk size empty", "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n\n;x\n", 400),
        ("chunk data too long", "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n\n2\nabc\n", 400),
        ("chunk ext with control", "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n\n2;a\u{1}\nab\n", 400),
        ("chunk ext without semicolon", "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n\n2 x\nab\n", 400),
        ("chunks over limit", "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n\n100001\n", 413),
        ("chunk size overflow", "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n\nfffffffffffffffffff\n", 413),
        ("trailer obs-fold", "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n\n0\nX: 1\n 2\n\n", 400),
        ("too many empty lines", "\n\n\n\n\nGET / HTTP/1.1\nHost: a\n\n", 400),
    ]

    @Test(arguments: 0..<malformed.count)
    func malformedRequests(_ index: Int) {
        let (name, raw, status) = Self.malformed[index]
        let ev = parseAll(crlf(raw))
        #expect(errorStatus(ev) == status, "\(name): \(ev)")
        #expect(head(ev) == nil || [400, 413].contains(status), "\(name)")
    }

    @Test func bareLineFeeds() {
        for raw in ["GET / HTTP/1.1\nHost: a\r\n\r\n", "GET / HTTP/1.1\r\nHost: a\n\r\n", "GET / HTTP/1.1\r\nHost: a\r\n\n",
                    "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\nx\r\n0\r\n\r\n",
                    "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\n0\r\n\r\n"] {
            #expect(errorStatus(parseAll(Array(raw.utf8))) == 400, "\(raw.debugDescription)")
        }
    }

    @Test func limits() {
        var limits = HTTPLimits()
        limits.maxRequestLineBytes = 64
        limits.maxHeaderBytes = 128
        limits.maxHeaderCount = 4
        limits.maxBodyBytes = 10
        let longTarget = "/" + String(repeating: "a", count: 100)
        #expect(errorStatus(parseAll(crlf("GET \(longTarget) HTTP/1.1\nHost: a\n\n"), limits: limits)) == 414)
        // Detected before the line ends (a client that never sends LF).
        #expect(errorStatus(parseAll(Array("GET \(longTarget)".utf8), limits: limits)) == 414)
        // A request line of exactly the limit passes.
        let exact = "GET /" + String(repeating: "a", count: 64 - 14) + " HTTP/1.1"
        #expect(exact.utf8.count == 64)
        #expect(errorStatus(parseAll(crlf("\(exact)\nHost: a\n\n"), limits: limits)) == nil)
        let bigHeader = "X: " + String(repeating: "b", count: 200)
        #expect(errorStatus(parseAll(crlf("GET / HTTP/1.1\nHost: a\n\(bigHeader)\n\n"), limits: limits)) == 431)
        #expect(errorStatus(parseAll(Array("GET / HTTP/1.1\r\n\(bigHeader)".utf8), limits: limits)) == 431)
        #expect(errorStatus(parseAll(crlf("GET / HTTP/1.1\nHost: a\nA: 1\nB: 1\nC: 1\nD: 1\n\n"), limits: limits)) == 431)
        #expect(errorStatus(parseAll(crlf("GET / HTTP/1.1\nHost: a\nA: 1\nB: 1\nC: 1\n\n"), limits: limits)) == nil)
        #expect(errorStatus(parseAll(crlf("POST / HTTP/1.1\nHost: a\nContent-Length: 11\n\n"), limits: limits)) == 413)
        #expect(errorStatus(parseAll(crlf("POST / HTTP/1.1\nHost: a\nContent-Length: 10\n\n0123456789"), limits: limits)) == nil)
        #expect(errorStatus(parseAll(crlf("POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n\n6\n012345\n5\n"), limits: limits)) == 413)
    }

    @Test func truncatedInputAtEOF() {
        #expect(errorStatus(parseAll(crlf("POST / HTTP/1.1\nHost: a\nContent-Length: 5\n\nab"), eof: true)) == 400)
        #expect(errorStatus(parseAll(crlf("GET / HTTP/1.1\nHo"), eof: true)) == 400)
        #expect(errorStatus(parseAll(crlf("GET / HTTP/1.1\nHost: a\n\n"), eof: true)) == nil)
    }

    @Test func errorStopsTheParser() {
        var p = HTTPParser()
        let ev = p.feed(crlf("GET / HTTP/9.9\nHost: a\n\nGET / HTTP/1.1\nHost: a\n\n"))
        #expect(ev.count == 1 && p.hasFailed)
        #expect(p.feed(crlf("GET / HTTP/1.1\nHost: a\n\n")).isEmpty)
        #expect(p.finish() == nil)
    }

    // MARK: - Splits

    static let splitCases: [(String, [UInt8])] = [
        ("chunked", crlf("POST /c HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\nExpect: 100-continue\n\n5;e=1\nhello\n1a\nabcdefghijklmnopqrstuvwxyz\n0\nT: x\n\n")),
        ("content-length", crlf("PUT /l?q=1 HTTP/1.1\nHost: a\nContent-Length: 12\nX-Y:  z \n\nhello world!")),
        ("pipelined pair", crlf("POST /1 HTTP/1.1\nHost: a\nContent-Length: 3\n\nabcGET /2 HTTP/1.1\nHost: a\nConnection: close\n\n")),
    ]

    @Test(arguments: 0..<splitCases.count)
    func everySplitGivesTheSameEvents(_ index: Int) {
        let (name, bytes) = Self.splitCases[index]
        let whole = parseAll(bytes)
        #expect(whole.contains(.end(trailers: HTTPHeaders())) || whole.contains { if case .end = $0 { true } else { false } })
        #expect(errorStatus(whole) == nil, "\(name)")
        for cut in 0...bytes.count {
            var p = HTTPParser()
            let events = p.feed(Array(bytes[..<cut])) + p.feed(Array(bytes[cut...]))
            #expect(normalized(events) == whole, "\(name) split at \(cut)")
        }
        for cut1 in stride(from: 0, through: bytes.count, by: 7) {
            for cut2 in cut1...bytes.count {
                var p = HTTPParser()
                let events = p.feed(Array(bytes[..<cut1])) + p.feed(Array(bytes[cut1..<cut2])) + p.feed(Array(bytes[cut2...]))
                if normalized(events) != whole { Issue.record("\(name) split at \(cut1), \(cut2)"); return }
            }
        }
        var p = HTTPParser()
        var events: [HTTPParserEvent] = []
        for b in bytes { events += p.feed([b]) }
        #expect(normalized(events) == whole, "\(name) byte by byte")
        #expect(p.isAtMessageBoundary)
    }

    /// Inputs that end in an error, small limits so the lines are over them: the error (status and code)
    /// must not depend on where the bytes were split (found by the libFuzzer harness `Fuzz/HTTPParserFuzz`:
    /// a too-long line ending in a bare LF was 400 `bare_lf` whole and 414 split early).
    static let errorSplitCases: [(String, [UInt8])] = [
        ("long request line, bare LF", Array(("GET /" + String(repeating: "a", count: 80) + " HTTP/1.1\nHost: a\n\n").utf8)),
        ("long request line, CRLF", crlf("GET /" + String(repeating: "a", count: 80) + " HTTP/1.1\nHost: a\n\n")),
        ("long header line, bare LF", Array(("GET / HTTP/1.1\r\nHost: a\r\nX: " + String(repeating: "b", count: 200) + "\n\r\n").utf8)),
        ("long chunk line, bare LF", Array(("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;" + String(repeating: "e", count: 40) + "\nhello\r\n0\r\n\r\n").utf8)),
        ("bare LF one past the limit", Array(("GET /" + String(repeating: "a", count: 51) + " HTTP/1.1\nHost: a\n\n").utf8)),
    ]

    @Test(arguments: 0..<errorSplitCases.count)
    func everySplitGivesTheSameError(_ index: Int) {
        var limits = HTTPLimits()
        limits.maxRequestLineBytes = 64
        limits.maxHeaderBytes = 128
        limits.maxChunkLineBytes = 16
        let (name, bytes) = Self.errorSplitCases[index]
        let whole = parseAll(bytes, limits: limits, eof: true)
        guard case .error(let expected)? = whole.last else {
            Issue.record("\(name): no error: \(whole)")
            return
        }
        for cut in 0...bytes.count {
            var p = HTTPParser(limits: limits)
            var events = p.feed(Array(bytes[..<cut])) + p.feed(Array(bytes[cut...]))
            if let e = p.finish() { events.append(e) }
            guard case .error(let got)? = normalized(events).last, got.status == expected.status, got.code == expected.code else {
                Issue.record("\(name): whole gives \(expected.status) \(expected.code), split at \(cut) gives \(normalized(events).last.map { "\($0)" } ?? "nothing")")
                return
            }
        }
        var p = HTTPParser(limits: limits)
        var events: [HTTPParserEvent] = []
        for b in bytes { events += p.feed([b]) }
        if let e = p.finish() { events.append(e) }
        #expect(normalized(events).last == whole.last, "\(name) byte by byte")
    }

    // MARK: - Fuzz

    @Test func fuzzNeverCrashesAndAlwaysConcludes() {
        var rng = SplitMix(seed: 0x5eed_1234)
        let seeds = Self.splitCases.map(\.1) + [crlf("GET / HTTP/1.0\n\n"), crlf("OPTIONS * HTTP/1.1\nHost: h\n\n")]
        let alphabet = Array("\r\n :;,0123456789abcdefABCDEF\t%/?*-HTTP/1.1chunkedContent-LengthTransfer-Encoding".utf8) + [0, 0x7f, 0xff, 0x80]
        var limits = HTTPLimits()
        limits.maxRequestLineBytes = 256
        limits.maxHeaderBytes = 512
        limits.maxHeaderCount = 8
        limits.maxBodyBytes = 1024
        var outcomes = [0, 0]  // complete, error
        for _ in 0..<4000 {
            var bytes = seeds[Int(rng.next() % UInt64(seeds.count))]
            for _ in 0..<(1 + Int(rng.next() % 4)) {
                let pos = Int(rng.next() % UInt64(bytes.count + 1))
                let byte = alphabet[Int(rng.next() % UInt64(alphabet.count))]
                switch rng.next() % 5 {
                case 0 where pos < bytes.count: bytes[pos] = byte
                case 1: bytes.insert(byte, at: pos)
                case 2 where pos < bytes.count: bytes.remove(at: pos)
                case 3: bytes.insert(contentsOf: Array(repeating: byte, count: Int(rng.next() % 600)), at: pos)
                case 4 where pos < bytes.count: bytes.removeSubrange(pos..<min(bytes.count, pos + Int(rng.next() % 20)))
                default: bytes.append(byte)
                }
            }
            var p = HTTPParser(limits: limits)
            var events: [HTTPParserEvent] = []
            var i = 0
            while i < bytes.count {
                let n = 1 + Int(rng.next() % 40)
                events += p.feed(Array(bytes[i..<min(bytes.count, i + n)]))
                i += n
            }
            if let e = p.finish() { events.append(e) }
            if bytes.isEmpty { continue }
            // Structure: (head body* end)* then optionally one error, and nothing after an error.
            var inMessage = false
            var valid = true
            for (k, e) in events.enumerated() {
                switch e {
                case .head: valid = valid && !inMessage; inMessage = true
                case .body(let b): valid = valid && inMessage && !b.isEmpty
                case .end: valid = valid && inMessage; inMessage = false
                case .error: valid = valid && k == events.count - 1
                }
            }
            guard valid, let last = events.last else {
                Issue.record("bad event sequence for \(bytes): \(events)")
                return
            }
            switch last {
            case .end: outcomes[0] += 1
            case .error: outcomes[1] += 1
            default: Issue.record("did not conclude: \(bytes)"); return
            }
        }
        print("fuzz: \(outcomes[0]) complete, \(outcomes[1]) errors")
        #expect(outcomes[0] > 100 && outcomes[1] > 100)
    }
}
