import Testing
@testable import HTTP1

@Suite struct HTTPLimitsTests {
    @Test func defaultsAreBounded() {
        let l = HTTPLimits()
        #expect(l.maxRequestLineBytes > 0 && l.maxRequestLineBytes <= l.maxHeaderBytes)
        #expect(l.maxBodyBytes > 0 && l.maxConnections > 0 && l.headerTimeout > 0 && l.writeTimeout > 0)
    }
}
