// See include/CEpoll.h.
#include "CEpoll.h"

#if defined(__linux__)

#include <errno.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

int cepoll_create(void) {
    int fd = epoll_create1(EPOLL_CLOEXEC);
    return fd >= 0 ? fd : -errno;
}

int cepoll_add_readable(int epfd, int fd, uint64_t id) {
    struct epoll_event event = {.events = EPOLLIN | EPOLLRDHUP, .data = {.u64 = id}};
    while (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event) != 0) {
        if (errno != EINTR) return -errno;
    }
    return 0;
}

int cepoll_delete(int epfd, int fd) {
    // A non-null event for kernels before 2.6.9, which required one even for EPOLL_CTL_DEL.
    struct epoll_event unused = {0};
    while (epoll_ctl(epfd, EPOLL_CTL_DEL, fd, &unused) != 0) {
        if (errno != EINTR) return -errno;
    }
    return 0;
}

int cepoll_wait(int epfd, uint64_t *ids, int max, int timeout_ms) {
    enum { capacity = 64 };
    struct epoll_event events[capacity];
    if (max > capacity) max = capacity;
    if (max < 1) return -EINVAL;
    int n;
    while ((n = epoll_wait(epfd, events, max, timeout_ms)) < 0) {
        if (errno != EINTR) return -errno;
    }
    for (int i = 0; i < n; i++) ids[i] = events[i].data.u64;
    return n;
}

int cepoll_wakeup_create(void) {
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    return fd >= 0 ? fd : -errno;
}

int cepoll_wakeup_signal(int wakeup_fd) {
    // Fails only with EAGAIN once the counter would overflow 2^64 - 2: it is readable then anyway.
    while (eventfd_write(wakeup_fd, 1) != 0) {
        if (errno == EAGAIN) return 0;
        if (errno != EINTR) return -errno;
    }
    return 0;
}

#endif
