// OpenSSL 3 (libssl-dev) for the HTTP/1.1 server's TLS and the HMAC-SHA256 of job callbacks.
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/pem.h>
#include <openssl/hmac.h>
#include <openssl/evp.h>
