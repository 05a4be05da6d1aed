/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * The whole server fed from a byte stream: one input is one client session
 * (normally VERSION, then anything). The stream is cut at the message
 * boundaries its headers announce; DMA_MAP and SET_IRQS messages with an odd
 * msg_id carry a memfd or eventfds, as a real client's would. Replies are
 * drained by a thread so the server never blocks on a full socket.
 */

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz_device.h"
#include "private.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void *
drain_replies(void *arg)
{
    int fd = *(int *)arg;
    char buf[65536];

    while (read(fd, buf, sizeof(buf)) > 0) {
    }
    return NULL;
}

static void
send_chunk(int fd, const uint8_t *p, size_t len, const int *fds, int nr)
{
    char cbuf[CMSG_SPACE(sizeof(int) * 4)];
    struct iovec iov = { .iov_base = (void *)p, .iov_len = len };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

    if (nr > 0) {
        memset(cbuf, 0, sizeof(cbuf));
        mh.msg_control = cbuf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nr);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * nr);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * nr);
    }
    while (len > 0) {
        ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL);
        if (n <= 0) {
            return;
        }
        len -= (size_t)n;
        iov.iov_base = (char *)iov.iov_base + n;
        iov.iov_len = len;
        mh.msg_control = NULL;
        mh.msg_controllen = 0;
    }
}

/* Send the input as messages, with fds where a client would attach some. */
static void
feed(int fd, const uint8_t *data, size_t size)
{
    while (size > 0) {
        struct vfio_user_header h;
        size_t len = size;
        int fds[4], nr = 0;

        if (size >= sizeof(h)) {
            memcpy(&h, data, sizeof(h));
            if (h.msg_size >= sizeof(h) && h.msg_size < size) {
                len = h.msg_size;
            }
            if (h.msg_id & 1) {
                if (h.cmd == VFIO_USER_DMA_MAP) {
                    fds[nr] = memfd_create("fuzz-dma", MFD_CLOEXEC);
                    if (fds[nr] >= 0 && ftruncate(fds[nr], 1 << 20) == 0) {
                        nr++;
                    }
                } else if (h.cmd == VFIO_USER_DEVICE_SET_IRQS) {
                    for (int i = 0; i < 1 + (h.msg_id >> 1) % 3; i++) {
                        fds[nr++] = eventfd(0, EFD_CLOEXEC);
                    }
                }
            }
        }
        send_chunk(fd, data, len, fds, nr);
        for (int i = 0; i < nr; i++) {
            close(fds[i]);
        }
        data += len;
        size -= len;
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vfu_ctx_t *ctx = fuzz_device();
    pthread_t drainer;
    int sv[2];

    if (size > (1 << 20) || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        return 0;
    }
    if (vfu_attach_fd(ctx, sv[0]) < 0) {
        close(sv[1]);
        return 0;
    }
    pthread_create(&drainer, NULL, drain_replies, &sv[1]);
    feed(sv[1], data, size);
    shutdown(sv[1], SHUT_WR);
    /* Serve until the client is gone; a parked quiesce never happens here. */
    for (int i = 0; i < 100000; i++) {
        if (vfu_run_ctx(ctx) < 0 && errno != EAGAIN && errno != EBUSY) {
            break;
        }
    }
    if (ctx->conn != NULL) {
        vfu_conn_lost(ctx);
    }
    pthread_join(drainer, NULL);
    close(sv[1]);
    return 0;
}
