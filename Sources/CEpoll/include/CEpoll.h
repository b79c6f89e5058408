// epoll(7) and eventfd(2) for the HTTP1 target's event loops (Sources/HTTP1/HTTPEventLoop.swift).
//
// Glibc's Swift module does not export <sys/epoll.h>, and `struct epoll_event` is
// `__attribute__((packed))` on x86-64 (12 bytes, `data` at offset 4), which Swift cannot import as laid
// out. These wrappers keep the struct on the C side: Swift passes and receives plain integers, and reads
// events as an array of the registration ids it chose. Every call retries EINTR and reports any other
// failure as a negative errno (`-errno`), so the caller can tell each one apart. Linux only.
#ifndef CEPOLL_H
#define CEPOLL_H

#include <stdint.h>

#if defined(__linux__)

/// `epoll_create1(EPOLL_CLOEXEC)`: the new descriptor, or -errno.
int cepoll_create(void);

/// `epoll_ctl(EPOLL_CTL_ADD)` of `fd` for readability and the peer's half-close (`EPOLLIN | EPOLLRDHUP`,
/// level-triggered), reported by `cepoll_wait` as `id`: 0, or -errno (EEXIST: already watched).
int cepoll_add_readable(int epfd, int fd, uint64_t id);

/// `epoll_ctl(EPOLL_CTL_DEL)` of `fd`: 0, or -errno (ENOENT: `fd` was not in the set).
int cepoll_delete(int epfd, int fd);

/// `epoll_wait` for up to `timeout_ms` (-1: no limit; an EINTR restarts the full wait), writing the ids of
/// at most `max` (and at most 64) ready registrations to `ids`: their count (0 on timeout), or -errno.
int cepoll_wait(int epfd, uint64_t *ids, int max, int timeout_ms);

/// `eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)`, a descriptor that turns readable once signalled (wakes a
/// loop's `epoll_wait` to stop it): the descriptor, or -errno.
int cepoll_wakeup_create(void);

/// Makes `wakeup_fd` readable (adds 1 to its counter): 0, or -errno.
int cepoll_wakeup_signal(int wakeup_fd);

#endif

#endif
