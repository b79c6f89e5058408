import COpenSSL
import Foundation

/// Certificate chain and private key (PEM files) that turn TLS on.
public struct HTTPTLSConfiguration: Sendable, Equatable {
    /// PEM file with the server certificate, followed by any intermediates.
    public var certificatePath: String
    /// PEM file with the certificate's private key (unencrypted).
    public var keyPath: String

    /// TLS from a certificate chain file and its key file.
    public init(certificatePath: String, keyPath: String) {
        self.certificatePath = certificatePath
        self.keyPath = keyPath
    }
}

/// The text of OpenSSL's most recent error on this thread (and clears the queue).
func openSSLErrorString() -> String {
    var messages: [String] = []
    while case let code = ERR_get_error(), code != 0 {
        var buf = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &buf, buf.count)
        messages.append(cString(buf))
    }
    return messages.isEmpty ? "unknown OpenSSL error" : messages.joined(separator: "; ")
}

/// An OpenSSL server context (SSL_CTX) built from PEM files: TLS 1.2 or newer, partial writes allowed.
final class TLSContext: @unchecked Sendable {
    let context: OpaquePointer

    init(_ configuration: HTTPTLSConfiguration) throws {
        ERR_clear_error()
        guard let ctx = SSL_CTX_new(TLS_server_method()) else {
            throw HTTPServerError("TLS: SSL_CTX_new failed: \(openSSLErrorString())")
        }
        context = ctx
        // SSL_CTX_set_min_proto_version / SSL_CTX_set_mode are macros over SSL_CTX_ctrl.
        SSL_CTX_ctrl(ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, Int(TLS1_2_VERSION), nil)
        SSL_CTX_ctrl(ctx, SSL_CTRL_MODE, Int(SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS), nil)
        guard SSL_CTX_use_certificate_chain_file(ctx, configuration.certificatePath) == 1 else {
            throw HTTPServerError("TLS: cannot load the certificate chain \(configuration.certificatePath): \(openSSLErrorString())")
        }
        guard SSL_CTX_use_PrivateKey_file(ctx, configuration.keyPath, SSL_FILETYPE_PEM) == 1 else {
            throw HTTPServerError("TLS: cannot load the private key \(configuration.keyPath): \(openSSLErrorString())")
        }
        guard SSL_CTX_check_private_key(ctx) == 1 else {
            throw HTTPServerError("TLS: the key \(configuration.keyPath) does not match the certificate \(configuration.certificatePath)")
        }
    }

    deinit { SSL_CTX_free(context) }
}

/// One connection's TLS state (SSL) over a non-blocking socket. Used only on the connection's queue.
final class TLSSession {
    /// Outcome of a non-blocking OpenSSL call.
    enum IOResult: Equatable {
        /// This many bytes were read or written (0 for a finished handshake).
        case done(Int)
        /// Retry when the socket is readable.
        case wantRead
        /// Retry when the socket is writable.
        case wantWrite
        /// The peer closed (close_notify or EOF) or the connection failed.
        case closed
    }

    private let ssl: OpaquePointer
    private(set) var handshakeDone = false
    /// The length of an SSL_write that returned WANT_*: OpenSSL requires the retry to repeat it.
    var pendingWriteLength = 0

    /// A server-side session on `fd` (the context is retained by OpenSSL's reference count).
    init?(context: TLSContext, fd: Int32) {
        guard let s = SSL_new(context.context) else { return nil }
        ssl = s
        SSL_set_fd(s, fd)
        SSL_set_accept_state(s)
    }

    deinit { SSL_free(ssl) }

    /// Advances the handshake.
    func handshake() -> IOResult {
        ERR_clear_error()
        let rc = SSL_do_handshake(ssl)
        if rc == 1 {
            handshakeDone = true
            return .done(0)
        }
        return classify(rc)
    }

    /// Reads decrypted bytes.
    func read(_ buffer: UnsafeMutableRawPointer, _ count: Int) -> IOResult {
        ERR_clear_error()
        let rc = SSL_read(ssl, buffer, Int32(clamping: count))
        return rc > 0 ? .done(Int(rc)) : classify(rc)
    }

    /// Encrypts and writes bytes (partial writes allowed).
    func write(_ buffer: UnsafeRawPointer, _ count: Int) -> IOResult {
        ERR_clear_error()
        let rc = SSL_write(ssl, buffer, Int32(clamping: count))
        return rc > 0 ? .done(Int(rc)) : classify(rc)
    }

    /// Sends close_notify, best effort (does not wait for the peer's).
    func shutdown() {
        ERR_clear_error()
        if handshakeDone { _ = SSL_shutdown(ssl) }
        ERR_clear_error()
    }

    private func classify(_ rc: Int32) -> IOResult {
        switch SSL_get_error(ssl, rc) {
        case SSL_ERROR_WANT_READ: return .wantRead
        case SSL_ERROR_WANT_WRITE: return .wantWrite
        default:
            ERR_clear_error()
            return .closed
        }
    }
}
