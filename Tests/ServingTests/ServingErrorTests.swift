import Testing
@testable import Serving

@Suite struct ServingErrorTests {
    @Test func carriesStatusAndField() {
        let e = ServingError(status: 400, message: "width 100 is too small", param: "width", code: "invalid_value")
        #expect(e.status == 400 && e.param == "width" && e.type == "invalid_request_error")
    }
}
