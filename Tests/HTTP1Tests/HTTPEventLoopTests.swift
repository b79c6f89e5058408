import Foundation
import Testing
@testable import HTTP1
#if canImport(Glibc)
import Glibc
#endif

/// The server's own event loops (`HTTPServerConfiguration.eventLoops`): how many it runs, that
/// connections are spread over them, and that their threads and descriptors end with the server.
@Suite("HTTPEventLoop")
struct HTTPEventLoopTests {
    /// Quick (so handled on the loop's thread): answers `<pid>/task/<tid>` of the thread it ran on.
    static let threadHandler = ClosureHandler(body: { _, response in
        response.respond(status: 200, body: Array(currentTask().utf8))
    }, quick: { _ in true })

    @Test(arguments: [1, 3])
    func concurrentKeepAliveConnectionsAreServedOnTheConfiguredLoops(eventLoops: Int) throws {
        try withServer(eventLoops: eventLoops, handler: Self.threadHandler) { server in
            #expect(server.eventLoops.count == eventLoops)
            let clients = try (0..<(2 * eventLoops + 1)).map { _ in try RawClient(port: server.port, timeout: 5) }
            var threads = [Set<String>](repeating: [], count: clients.count)
            for _ in 0..<5 {
                // Every connection's request in flight at once, then the answers.
                for c in clients { c.send("GET /thread HTTP/1.1\nHost: t\n\n") }
                for (i, c) in clients.enumerated() {
                    let r = try c.readResponse()
                    #expect(r.status == 200)
                    #expect(r.headers["connection"] == nil)
                    threads[i].insert(r.text)
                }
            }
            // A connection stays on its loop; round robin reaches every loop and no other thread.
            #expect(threads.allSatisfy { $0.count == 1 })
            #expect(Set(threads.flatMap { $0 }).count == eventLoops)
        }
    }

    @Test(arguments: [0, -2])
    func eventLoopsBelowOneFailStartNamingTheField(eventLoops: Int) throws {
        let server = HTTPServer(configuration: HTTPServerConfiguration(port: 0, eventLoops: eventLoops), handler: echoHandler)
        #expect { try server.start() } throws: { error in
            "\(error)".contains("eventLoops") && "\(error)".contains("at least 1") && "\(error)".contains("\(eventLoops)")
        }
        #expect(server.port == 0)  // refused before binding
        #expect(server.eventLoops.isEmpty)
    }

    /// Per server rather than a count of `/proc/self/fd` and `/proc/self/task`: other suites start and
    /// stop servers in parallel with this one.
    @Test func serversStartedAndStoppedInSequenceLeaveNoThreadsOrDescriptors() throws {
        for eventLoops in [1, 3] {
            let server = HTTPServer(configuration: HTTPServerConfiguration(port: 0, eventLoops: eventLoops), handler: Self.threadHandler)
            try server.start()
            let clients = try (0..<eventLoops).map { _ in try RawClient(port: server.port, timeout: 5) }
            let threads = try clients.map { try $0.request("GET /thread HTTP/1.1\nHost: t\n\n").text }
            #expect(Set(threads).count == eventLoops)
            #expect(threads.allSatisfy { FileManager.default.fileExists(atPath: "/proc/\($0)") })
            let descriptors = server.eventLoops.map(LoopDescriptors.init)
            #expect(descriptors.count == eventLoops)
            #expect(descriptors.allSatisfy { $0.epollIsOpen && $0.eventfdIsOpen })

            let done = DispatchSemaphore(value: 0)
            server.shutdown(deadline: 1) { done.signal() }
            #expect(done.wait(timeout: .now() + 10) == .success)
            // Closed before the completion runs; the threads are gone just after.
            #expect(descriptors.allSatisfy { !$0.epollIsOpen && !$0.eventfdIsOpen })
            #expect(eventually { threads.allSatisfy { !FileManager.default.fileExists(atPath: "/proc/\($0)") } })
            for c in clients { #expect(c.isClosedByServer()) }
        }
    }

    @Test func epollFailuresComeBackAsErrno() throws {
        let loop = try HTTPEventLoop(index: 0)
        var pipeFDs: [Int32] = [-1, -1]
        #expect(pipe(&pipeFDs) == 0)
        defer { for fd in pipeFDs { close(fd) } }
        #expect(loop.watch(1, fd: pipeFDs[0]) == 0)
        #expect(loop.watch(1, fd: pipeFDs[0]) == EEXIST)
        #expect(loop.unwatch(fd: pipeFDs[0]) == 0)
        #expect(loop.unwatch(fd: pipeFDs[0]) == ENOENT)
        #expect(loop.watch(2, fd: -1) == EBADF)
        loop.stop()
        loop.waitUntilStopped()
        #expect(!LoopDescriptors(loop).epollIsOpen)
        // A stopped loop refuses instead of touching a descriptor number that may have been reused.
        #expect(loop.watch(3, fd: pipeFDs[0]) == EBADF)
        #expect(loop.unwatch(fd: pipeFDs[0]) == EBADF)
    }

    @Test func aServerDroppedWithoutShutdownClosesItsConnectionsAndStopsItsLoops() throws {
        var clients: [RawClient] = []
        var threads: [String] = []
        var descriptors: [LoopDescriptors] = []
        do {
            let server = HTTPServer(configuration: HTTPServerConfiguration(port: 0, eventLoops: 2), handler: Self.threadHandler)
            try server.start()
            clients = try (0..<2).map { _ in try RawClient(port: server.port, timeout: 5) }
            threads = try clients.map { try $0.request("GET /thread HTTP/1.1\nHost: t\n\n").text }
            descriptors = server.eventLoops.map(LoopDescriptors.init)
        }
        for c in clients { #expect(c.isClosedByServer()) }
        #expect(eventually { descriptors.allSatisfy { !$0.epollIsOpen && !$0.eventfdIsOpen } })
        #expect(eventually { threads.allSatisfy { !FileManager.default.fileExists(atPath: "/proc/\($0)") } })
    }
}

/// `<pid>/task/<tid>` of the calling thread (`/proc/thread-self`'s target).
private func currentTask() -> String {
    (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/thread-self")) ?? "?"
}

/// What tells a loop's epoll set and eventfd from others in `/proc/self` (a descriptor number alone
/// may be reused at once by a server of another suite).
private struct LoopDescriptors {
    let epfd: Int32
    let wakeupFD: Int32
    let wakeupID: UInt64
    let eventfdID: String?

    init(_ loop: HTTPEventLoop) {
        epfd = loop.epfd
        wakeupFD = loop.wakeupFD
        wakeupID = loop.wakeupID
        eventfdID = Self.field("eventfd-id", of: loop.wakeupFD)
    }

    /// `epfd` is an epoll set holding this loop's wake-up registration (its random id, in hex).
    var epollIsOpen: Bool {
        Self.target(of: epfd) == "anon_inode:[eventpoll]"
            && (Self.info(epfd)?.contains("data: \(String(wakeupID, radix: 16))") ?? false)
    }

    /// `wakeupFD` is still this loop's eventfd (same `eventfd-id` where the kernel reports one).
    var eventfdIsOpen: Bool {
        Self.target(of: wakeupFD) == "anon_inode:[eventfd]" && Self.field("eventfd-id", of: wakeupFD) == eventfdID
    }

    private static func target(of fd: Int32) -> String? {
        try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(fd)")
    }

    private static func info(_ fd: Int32) -> String? {
        try? String(contentsOfFile: "/proc/self/fdinfo/\(fd)", encoding: .utf8)
    }

    private static func field(_ name: String, of fd: Int32) -> String? {
        info(fd)?.split(separator: "\n").first { $0.hasPrefix(name + ":") }.map {
            $0.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces)
        }
    }
}
