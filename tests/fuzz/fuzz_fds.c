/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * One client session whose input also decides which fds go with each
 * message and what the client does to them between messages: memfds
 * sealed or not (and sparse ones of 1 TiB), eventfds free or saturated and
 * blocking, both ends of pipes, /dev/null, plain files (which can't be
 * sealed); memfds and plain files truncated, memfds sealed, after they
 * were mapped; and device DMA (vfu_addr_to_sgl + vfu_sgl_get, touching
 * every byte) between messages, which is where a shrunk mapped file would
 * raise SIGBUS. The server is run after each message, so that each step
 * meets the state the previous one left.
 *
 * The input is a sequence of steps, the first byte of each choosing one:
 *   0 message: u16 length, u8 fd count (mod 20), that many u8 fd kinds, then
 *     length bytes sent as is (header included, consistent or not)
 *   1 truncate: u8 memfd or plain file (of the last 16 made), u32 new size (mod 16 MiB)
 *   2 seal: u8 memfd, against shrinking and growing
 *   3 device DMA: u64 iova, u16 length - 1
 */

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "fuzz_device.h"
#include "fuzz_input.h"
#include "private.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_SEND_FDS 20
#define KEPT_MEMFDS  16

struct session {
    vfu_ctx_t *ctx;
    int sock;
    int mem[KEPT_MEMFDS];       /* memfds kept by the client, a ring */
    unsigned nmem;
    dma_sg_t *sg;
    bool gone;
};

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
keep_memfd(struct session *s, int fd)
{
    unsigned i = s->nmem++ % KEPT_MEMFDS;

    if (s->mem[i] >= 0) {
        close(s->mem[i]);
    }
    s->mem[i] = dup(fd);
}

/* An fd of the kind asked for (the caller closes it), or -1. */
static int
make_fd(struct session *s, unsigned kind)
{
    uint64_t full = 0xfffffffffffffffeull;
    int fd = -1, p[2];

    switch (kind % 9) {
    case 0:
    case 1:
    case 6:
        fd = memfd_create("fuzz-fds", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0 ||
            ftruncate(fd, kind % 8 == 6 ? (off_t)1 << 40 : 1 << 20) < 0) {
            break;
        }
        if (kind % 8 != 1) {
            (void)fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK);
        }
        keep_memfd(s, fd);
        break;
    case 2:
        fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        break;
    case 3:
        fd = eventfd(0, EFD_CLOEXEC);       /* blocking, one short of full */
        if (fd >= 0 && write(fd, &full, sizeof(full)) != sizeof(full)) {
            close(fd);
            fd = -1;
        }
        break;
    case 4:
    case 5:
        if (pipe2(p, O_CLOEXEC) == 0) {
            /* 4: a write end nobody reads (SIGPIPE bait); 5: a read end */
            fd = kind % 8 == 4 ? p[1] : p[0];
            close(kind % 8 == 4 ? p[0] : p[1]);
        }
        break;
    case 8:
        /* A plain file: it can't be sealed, and is mapped under the
         * SIGBUS guard; truncating it is op 1 as for the memfds. */
        fd = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (fd >= 0 && ftruncate(fd, 1 << 20) < 0) {
            close(fd);
            fd = -1;
            break;
        }
        if (fd >= 0) {
            keep_memfd(s, fd);
        }
        break;
    default:
        fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        break;
    }
    return fd;
}

static void
send_msg(struct session *s, const uint8_t *p, size_t len, const int *fds,
         int nr)
{
    char cbuf[CMSG_SPACE(sizeof(int) * MAX_SEND_FDS)];
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
        ssize_t n = sendmsg(s->sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n <= 0) {
            if (n < 0 && errno == EAGAIN && !s->gone) {
                (void)vfu_run_ctx(s->ctx);     /* make room */
                continue;
            }
            return;
        }
        len -= (size_t)n;
        iov.iov_base = (char *)iov.iov_base + n;
        iov.iov_len = len;
        mh.msg_control = NULL;
        mh.msg_controllen = 0;
    }
}

/* Serve what has arrived (the context is non-blocking). */
static void
serve(struct session *s)
{
    for (int i = 0; i < 64 && !s->gone; i++) {
        if (vfu_run_ctx(s->ctx) < 0) {
            if (errno == EAGAIN || errno == EBUSY) {
                return;
            }
            s->gone = true;
        }
    }
}

/* What a device thread may do at any time: reach guest memory. */
static void
device_dma(struct session *s, uint64_t iova, size_t len)
{
    struct iovec iov;

    if (s->gone ||
        vfu_addr_to_sgl(s->ctx, (vfu_dma_addr_t)(uintptr_t)iova, len, s->sg, 1,
                        PROT_READ | PROT_WRITE) != 1 ||
        vfu_sgl_get(s->ctx, s->sg, &iov, 1, 0) != 0) {
        return;
    }
    volatile uint8_t *p = iov.iov_base;
    for (size_t i = 0; i < iov.iov_len; i++) {
        p[i] = (uint8_t)(p[i] + 1);
    }
    vfu_sgl_put(s->ctx, s->sg, &iov, 1);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct session s = { .ctx = fuzz_device() };
    struct in in = { data, size };
    pthread_t drainer;
    int sv[2];

    if (size > (1 << 20) ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        return 0;
    }
    if (vfu_attach_fd(s.ctx, sv[0]) < 0) {
        close(sv[1]);
        return 0;
    }
    s.sock = sv[1];
    s.sg = calloc(1, dma_sg_size());
    for (int i = 0; i < KEPT_MEMFDS; i++) {
        s.mem[i] = -1;
    }
    pthread_create(&drainer, NULL, drain_replies, &sv[1]);
    while (in.left > 0 && !s.gone && s.sg != NULL) {
        unsigned op = (unsigned)take(&in, 1) % 4;
        int fds[MAX_SEND_FDS], nr = 0, m;

        switch (op) {
        case 0: {
            size_t len = (size_t)take(&in, 2);
            int want = (int)(take(&in, 1) % MAX_SEND_FDS);
            for (int i = 0; i < want; i++) {
                int fd = make_fd(&s, (unsigned)take(&in, 1));
                if (fd >= 0) {
                    fds[nr++] = fd;
                }
            }
            len = len < in.left ? len : in.left;
            if (len > 0) {
                send_msg(&s, in.p, len, fds, nr);
            }
            in.p += len;
            in.left -= len;
            for (int i = 0; i < nr; i++) {
                close(fds[i]);
            }
            serve(&s);
            break;
        }
        case 1:
            m = s.mem[take(&in, 1) % KEPT_MEMFDS];
            off_t to = (off_t)(take(&in, 4) % (16u << 20));
            if (m >= 0) {
                (void)ftruncate(m, to);
            }
            break;
        case 2:
            m = s.mem[take(&in, 1) % KEPT_MEMFDS];
            if (m >= 0) {
                (void)fcntl(m, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW);
            }
            break;
        default: {
            uint64_t iova = take(&in, 8);
            device_dma(&s, iova, (size_t)take(&in, 2) + 1);
            break;
        }
        }
    }
    shutdown(sv[1], SHUT_WR);
    for (int i = 0; i < 100000 && !s.gone; i++) {
        if (vfu_run_ctx(s.ctx) < 0 && errno != EAGAIN && errno != EBUSY) {
            break;
        }
    }
    if (s.ctx->conn != NULL) {
        vfu_conn_lost(s.ctx);
    }
    pthread_join(drainer, NULL);
    close(sv[1]);
    for (int i = 0; i < KEPT_MEMFDS; i++) {
        if (s.mem[i] >= 0) {
            close(s.mem[i]);
        }
    }
    free(s.sg);
    return 0;
}
