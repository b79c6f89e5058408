import Testing
@testable import HTTP1

@Suite struct HTTPLimitsTests {
    @Test func defaultsAreBounded() {
        let l = HTTPLimits()
        #expect(l.maxRequestLineBytes > 0 && l.maxRequestLineBytes <= l.maxHeaderBytes)
        #expect(l.maxBodyBytes > 0 && l.maxConnections > 0 && l.headerTimeout > 0 && l.writeTimeout > 0)
    }

    /// Limits under which the server would read no request at all (parsing waits for unsent output to
    /// fall to the high-water mark, and for room in the pipeline queue) are refused at start, by name.
    @Test func limitsThatWouldAnswerNothingFailStart() throws {
        var negativeMark = HTTPLimits()
        negativeMark.writeHighWaterMark = -1
        var noQueue = HTTPLimits()
        noQueue.maxPipelinedRequests = 0
        for (limits, field) in [(negativeMark, "limits.writeHighWaterMark"), (noQueue, "limits.maxPipelinedRequests")] {
            let server = HTTPServer(configuration: HTTPServerConfiguration(port: 0, limits: limits), handler: echoHandler)
            #expect { try server.start() } throws: { "\($0)".contains(field) }
            #expect(server.port == 0)  // refused before binding
        }
        var zeroMark = HTTPLimits()
        zeroMark.writeHighWaterMark = 0  // every answer written out before the next request is read
        try withServer(limits: zeroMark) { server in
            let c = try RawClient(port: server.port, timeout: 5)
            c.send("GET /1 HTTP/1.1\nHost: t\n\nGET /2 HTTP/1.1\nHost: t\n\n")
            #expect(try c.readResponse().text == "GET /1 ")
            #expect(try c.readResponse().text == "GET /2 ")
        }
    }
}
