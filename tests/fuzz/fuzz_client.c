/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * The client library against a hostile server. One input is
 *
 *   u16 script_len, u8 mode, script[script_len], chunks...
 *
 * The script is the sequence of client calls this thread makes (every one
 * may fail; one op makes two calls from two threads at once). Each chunk is
 * "u8 ctl, u16 len, bytes[len]": a server thread writes the bytes back,
 * reading whatever the client sends meanwhile. ctl bit 0 patches the msg_id
 * (bit 1: also the cmd) of the client's latest unanswered request into the
 * chunk's first bytes, so that replies can match (the server parses the
 * client's stream to know them); bits 2-3 attach that many memfds; bit 4
 * pauses a little first (the client then sees the stream in pieces); bit 5
 * ends the stream there; bit 6 adds a u16 after len, and that many times 16
 * zero bytes follow the chunk's (big payloads from small inputs). Then the server closes its end (mode bit 0: only
 * shuts down writing, and reads until the client hangs up), so that no call
 * waits for the client's 10 s timeout.
 *
 * No input may leave an fd open: that is checked after each one (a readdir
 * of /proc/self/fd, cheap next to the threads and sockets an input sets up,
 * so libFuzzer's loop does it too). Memory leaks are ASan's to find.
 * tests/fuzz/make_client_seeds.py writes the seeds.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "vfu-client.h"
#include "vfu-client-migration.h"
#include "fuzz_input.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define MAX_OPS      48     /* client calls per input */
#define MAX_MAPS     8      /* DMA buffers kept per input */
#define WAIT_BUDGET  60     /* ms the server may wait in all, per input */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- the server side ---- */

struct server {
    int fd;
    const uint8_t *p;       /* the chunks */
    size_t left;
    bool half_close;
    /* parsing what the client sends, to know its requests' ids */
    uint8_t hdr[16];
    size_t hdr_have;
    uint64_t skip;          /* payload bytes of the current message left */
    /* requests not answered yet, latest last: replies take the latest */
    uint16_t req_id[8], req_cmd[8];
    int nr_req;
    int budget_ms;
};

static void
note_bytes(struct server *s, const uint8_t *b, size_t n)
{
    while (n > 0) {
        if (s->skip > 0) {
            size_t k = s->skip < n ? (size_t)s->skip : n;
            s->skip -= k;
            b += k;
            n -= k;
            continue;
        }
        size_t k = sizeof(s->hdr) - s->hdr_have;
        k = k < n ? k : n;
        memcpy(s->hdr + s->hdr_have, b, k);
        s->hdr_have += k;
        b += k;
        n -= k;
        if (s->hdr_have < sizeof(s->hdr)) {
            break;
        }
        struct vfio_user_header h;
        memcpy(&h, s->hdr, sizeof(h));
        s->hdr_have = 0;
        s->skip = h.msg_size > sizeof(h) ? h.msg_size - sizeof(h) : 0;
        if ((h.flags & VFIO_USER_F_TYPE_MASK) == VFIO_USER_F_TYPE_COMMAND &&
            !(h.flags & VFIO_USER_F_NO_REPLY)) {
            if (s->nr_req == (int)ARRAY_SIZE(s->req_id)) {
                memmove(s->req_id, s->req_id + 1, sizeof(s->req_id) - 2);
                memmove(s->req_cmd, s->req_cmd + 1, sizeof(s->req_cmd) - 2);
                s->nr_req--;
            }
            s->req_id[s->nr_req] = h.msg_id;
            s->req_cmd[s->nr_req] = h.cmd;
            s->nr_req++;
        }
    }
}

/* Read what the client sent, waiting up to timeout_ms; false at its EOF. */
static bool
drain(struct server *s, int timeout_ms)
{
    uint8_t buf[65536];
    struct pollfd pfd = { .fd = s->fd, .events = POLLIN };

    if (poll(&pfd, 1, timeout_ms) <= 0) {
        return true;
    }
    for (;;) {
        ssize_t n = recv(s->fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0) {
            note_bytes(s, buf, (size_t)n);
            continue;
        }
        return n < 0 && (errno == EAGAIN || errno == EINTR);
    }
}

static void
spend(struct server *s, int ms)
{
    struct timespec a, b;

    clock_gettime(CLOCK_MONOTONIC, &a);
    drain(s, ms);
    clock_gettime(CLOCK_MONOTONIC, &b);
    s->budget_ms -= (int)((b.tv_sec - a.tv_sec) * 1000 +
                          (b.tv_nsec - a.tv_nsec) / 1000000) + 1;
}

/* Write all of p, with nr memfds on the first piece, reading meanwhile. */
static bool
send_all(struct server *s, const uint8_t *p, size_t len, int nr)
{
    char cbuf[CMSG_SPACE(sizeof(int) * 3)];
    int fds[3];
    bool ok = true;

    if (len == 0) {
        return true;    /* a stream carries no fds without a byte */
    }
    for (int i = 0; i < nr; i++) {
        fds[i] = memfd_create("fz", MFD_CLOEXEC);
        if (fds[i] < 0 || ftruncate(fds[i], 4096) < 0) {
            abort();
        }
    }
    do {
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
        ssize_t n = sendmsg(s->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            for (int i = 0; i < nr; i++) {
                close(fds[i]);
            }
            nr = 0;
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            /* The client may be writing too: read it, or both block. */
            struct pollfd pfd = { .fd = s->fd, .events = POLLIN | POLLOUT };
            poll(&pfd, 1, 100);
            if (!drain(s, 0)) {
                ok = false;
                break;
            }
        } else {
            ok = false;
            break;
        }
    } while (len > 0);
    for (int i = 0; i < nr; i++) {
        close(fds[i]);
    }
    return ok;
}

static void *
serve(void *arg)
{
    struct server *s = arg;
    struct in in = { .p = s->p, .left = s->left };

    while (in.left > 0) {
        static const uint8_t zeros[65536];
        unsigned ctl = (unsigned)take(&in, 1);
        size_t len = (size_t)take(&in, 2);
        size_t pad = ctl & 0x40 ? (size_t)take(&in, 2) * 16 : 0;
        uint8_t chunk[65536];

        len = len < in.left ? len : in.left;
        memcpy(chunk, in.p, len);
        in.p += len;
        in.left -= len;
        if ((ctl & 0x10) && s->budget_ms > 0) {
            spend(s, 1);
        }
        if (ctl & 0x01) {
            /* The client may not have sent it yet: give it a moment. */
            for (int i = 0; i < 20 && s->nr_req == 0 && s->budget_ms > 0; i++) {
                spend(s, 1);
            }
            if (s->nr_req > 0) {
                s->nr_req--;
                memcpy(chunk, &s->req_id[s->nr_req], len < 2 ? len : 2);
                if ((ctl & 0x02) && len > 2) {
                    memcpy(chunk + 2, &s->req_cmd[s->nr_req],
                           len < 4 ? len - 2 : 2);
                }
            }
        }
        if (!drain(s, 0) || !send_all(s, chunk, len, (ctl >> 2) & 3)) {
            break;
        }
        while (pad > 0) {
            size_t n = pad < sizeof(zeros) ? pad : sizeof(zeros);
            if (!send_all(s, zeros, n, 0)) {
                break;
            }
            pad -= n;
        }
        if (pad > 0 || (ctl & 0x20)) {
            break;
        }
    }
    if (s->half_close) {
        shutdown(s->fd, SHUT_WR);
        while (drain(s, 1000)) {
        }
    }
    close(s->fd);
    return NULL;
}

/* ---- the client side ---- */

struct client {
    vfu_client_t *c;
    struct in in;
    void *maps[MAX_MAPS];
    uint64_t map_iova[MAX_MAPS], map_size[MAX_MAPS];
    int nr_maps;
    uint8_t *buf;           /* for region and migration data */
};

#define BUF_SIZE (300u << 10)

static const size_t sizes[] = {
    0, 1, 2, 4, 8, 16, 64, 4096, 65535, 65536, 65537, 100000, 262144,
    BUF_SIZE,
};

static const uint64_t u64s[] = {
    0, 1, 4096, 0x10000, 1u << 20, 1u << 21, 64u << 20, 0xffffffff,
    0x100000000, UINT64_MAX, UINT64_MAX - 4095, 0x8000000000000000,
};

static size_t
pick_size(struct client *k)
{
    return sizes[take(&k->in, 1) % ARRAY_SIZE(sizes)];
}

static uint64_t
pick_u64(struct client *k)
{
    unsigned t = (unsigned)take(&k->in, 1);
    return t & 0x80 ? take(&k->in, 8) : u64s[t % ARRAY_SIZE(u64s)];
}

/* A reply that says it held more than it was given is a library bug. */
static void
check(bool ok)
{
    if (!ok) {
        abort();
    }
}

/* Read every byte of a returned buffer, so that ASan sees bad ones. */
static unsigned
touch(const void *p, size_t n)
{
    const volatile uint8_t *b = p;
    unsigned sum = 0;

    for (size_t i = 0; i < n; i++) {
        sum += b[i];
    }
    return sum;
}

static int
sink(void *opaque, const void *buf, size_t len)
{
    (void)opaque;
    touch(buf, len);
    /* Sometimes the sink fails, as a full disk would. */
    if (len > 0 && ((const uint8_t *)buf)[0] == 0xee) {
        errno = ENOSPC;
        return -1;
    }
    return 0;
}

static int
on_dirty(void *opaque, uint64_t iova, uint64_t length, uint64_t page_size,
         const uint64_t *bitmap)
{
    (void)opaque;
    (void)iova;
    if (page_size != 0 && length / page_size < (64u << 20)) {
        uint64_t pages = length / page_size;
        touch(bitmap, (size_t)((pages + 63) / 64) * 8);
    }
    return 0;
}

static void
op_negotiate(struct client *k, unsigned how)
{
    struct vfu_client_caps caps, got;
    uint8_t raw[256];

    if (how == 0) {
        vfu_client_negotiate(k->c, NULL, &got);
        return;
    }
    if (how == 1) {
        vfu_client_default_caps(&caps);
        caps.minor = (uint16_t)take(&k->in, 1);
        caps.max_msg_fds = (uint32_t)take(&k->in, 1);
        caps.max_data_xfer_size = pick_u64(k);
        caps.pgsizes = pick_u64(k);
        caps.has_migration = take(&k->in, 1) & 1;
        caps.migr_pgsize = pick_u64(k);
        caps.write_multiple = take(&k->in, 1) & 1;
        vfu_client_negotiate(k->c, &caps, take(&k->in, 1) & 1 ? &got : NULL);
        return;
    }
    size_t len = (size_t)take(&k->in, 1);
    for (size_t i = 0; i < len; i++) {
        raw[i] = (uint8_t)take(&k->in, 1);
    }
    vfu_client_negotiate_raw(k->c, 0, (uint16_t)take(&k->in, 1), raw, len,
                             &got);
}

static void
op_region_info(struct client *k)
{
    struct vfu_client_region_info ri;

    if (vfu_client_get_region_info(k->c, (uint32_t)take(&k->in, 1) % 12,
                                   &ri) == 0) {
        check(ri.nr_sparse == 0 || ri.sparse != NULL);
        touch(ri.sparse, ri.nr_sparse * sizeof(*ri.sparse));
        touch(ri.caps, ri.caps_size);
        vfu_client_region_info_free(&ri);
    }
}

static void
op_set_irqs(struct client *k)
{
    int fds[4];
    uint8_t bools[8];
    uint32_t nr = (uint32_t)take(&k->in, 1) % 5;
    uint32_t flags = (uint32_t)take(&k->in, 2);
    size_t data = (size_t)take(&k->in, 1) % (sizeof(bools) + 1);

    for (uint32_t i = 0; i < nr; i++) {
        fds[i] = (take(&k->in, 1) & 3) == 0 ? -1 : eventfd(0, EFD_CLOEXEC);
    }
    memset(bools, 1, sizeof(bools));
    vfu_client_set_irqs(k->c, flags, (uint32_t)take(&k->in, 1) % 6,
                        (uint32_t)take(&k->in, 1), (uint32_t)take(&k->in, 1),
                        fds, nr, bools, data);
    for (uint32_t i = 0; i < nr; i++) {
        if (fds[i] >= 0) {
            close(fds[i]);
        }
    }
}

static void
op_region_rw(struct client *k, unsigned what)
{
    uint32_t index = (uint32_t)take(&k->in, 1) % 10;
    uint64_t offset = pick_u64(k);
    size_t n = pick_size(k);

    switch (what) {
    case 0:
        vfu_client_region_read(k->c, index, offset, k->buf, n);
        break;
    case 1:
        vfu_client_region_write(k->c, index, offset, k->buf, n);
        break;
    case 2:
        vfu_client_region_write_posted(k->c, index, offset, k->buf, n);
        break;
    default: {
        struct vfio_user_write_multi_one wrs[4] = { 0 };
        uint32_t nr = (uint32_t)take(&k->in, 1) % 6;
        for (uint32_t i = 0; i < nr && i < 4; i++) {
            wrs[i].region = index;
            wrs[i].offset = offset + i * 4;
            wrs[i].count = 4;
        }
        int rc = vfu_client_region_write_multi(k->c, wrs, nr <= 4 ? nr : 0);
        check(rc < 0 || (uint32_t)rc <= nr);
        break;
    }
    }
}

static void
op_io_fds(struct client *k)
{
    union {
        struct vfio_user_region_io_fds_reply r;
        uint8_t b[512];
    } rep;
    static const size_t caps[] = { 0, 8, sizeof(rep.r), 64, 512 };
    size_t cap = caps[take(&k->in, 1) % ARRAY_SIZE(caps)];
    size_t size = cap;
    int fds[4];
    uint32_t nr = (uint32_t)take(&k->in, 1) % 5;

    if (vfu_client_get_region_io_fds(k->c, (uint32_t)take(&k->in, 1) % 10,
                                     &rep.r, &size, fds, &nr) == 0) {
        check(size <= cap && nr <= 4);
        touch(&rep, size);
        for (uint32_t i = 0; i < nr; i++) {
            check(fds[i] >= 0);
            close(fds[i]);
        }
    }
}

static void
op_dma_map(struct client *k, bool with_fd)
{
    static const uint64_t map_sizes[] = { 4096, 8192, 65536 };
    uint64_t iova = (take(&k->in, 1) % 16) * 0x10000;
    uint64_t size = map_sizes[take(&k->in, 1) % ARRAY_SIZE(map_sizes)];
    uint32_t flags = (uint32_t)take(&k->in, 1) % 4;
    bool keep = take(&k->in, 1) & 1;
    void *vaddr = NULL;
    int fd = -1;

    if (!keep) {
        /* No local memory: the size may be anything. */
        size = pick_u64(k);
    } else if (k->nr_maps < MAX_MAPS) {
        vaddr = calloc(1, size);
        k->maps[k->nr_maps] = vaddr;
        k->map_iova[k->nr_maps] = iova;
        k->map_size[k->nr_maps] = size;
        k->nr_maps++;
    }
    if (with_fd) {
        fd = memfd_create("fz-dma", MFD_CLOEXEC);
        if (fd < 0 || ftruncate(fd, 65536) < 0) {
            abort();
        }
    }
    vfu_client_dma_map(k->c, iova, size, flags, fd, with_fd ? 4096 : 0, vaddr);
    if (fd >= 0) {
        close(fd);
    }
}

static void
op_dma_unmap(struct client *k)
{
    unsigned t = (unsigned)take(&k->in, 1);

    if (t & 1) {
        vfu_client_dma_unmap(k->c, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL);
    } else if (k->nr_maps > 0) {
        int i = (int)(t >> 1) % k->nr_maps;
        vfu_client_dma_unmap(k->c, k->map_iova[i], k->map_size[i], 0);
    } else {
        vfu_client_dma_unmap(k->c, pick_u64(k), pick_u64(k),
                             (uint32_t)take(&k->in, 1));
    }
}

static void
op_feature(struct client *k)
{
    uint8_t out[512], in[16] = { 0 };
    static const size_t caps[] = { 0, 4, 8, 24, 64, 300, 512 };
    size_t cap = caps[take(&k->in, 1) % ARRAY_SIZE(caps)];
    size_t size = cap;
    uint32_t flags = (uint32_t)take(&k->in, 4);

    if (vfu_client_device_feature(k->c, flags, in, (size_t)take(&k->in, 1) % 17,
                                  cap > 0 ? out : NULL, &size) == 0) {
        check(size <= cap);
        touch(out, size);
    }
}

static void
op_logging(struct client *k, unsigned what)
{
    struct vfio_user_device_feature_dma_logging_range r[2] = {
        { .iova = 0, .length = 0x10000 },
        { .iova = 0x100000, .length = 0x4000 },
    };
    uint64_t page = (take(&k->in, 1) & 1) ? 4096 : pick_u64(k);
    uint64_t bitmap[8];

    switch (what) {
    case 0:
        vfu_client_dma_logging_start(k->c, page, r,
                                     (uint32_t)take(&k->in, 1) % 3);
        break;
    case 1:
        vfu_client_dma_logging_stop(k->c);
        break;
    case 2:
        vfu_client_dma_logging_report(k->c, 0, (take(&k->in, 1) % 9) * 4096 * 8,
                                      page, bitmap,
                                      (size_t)take(&k->in, 1) % 9 * 8);
        break;
    default:
        vfu_client_mig_dirty_report(k->c, r, (uint32_t)take(&k->in, 1) % 3,
                                    page, on_dirty, k);
    }
}

static void
op_mig(struct client *k, unsigned what)
{
    uint64_t flags;
    uint32_t state;
    size_t n = pick_size(k);

    switch (what) {
    case 0:
        vfu_client_mig_get_flags(k->c, &flags);
        break;
    case 1:
        vfu_client_mig_get_state(k->c, &state);
        break;
    case 2:
        vfu_client_mig_set_state(k->c, (uint32_t)take(&k->in, 1) % 9);
        break;
    case 3: {
        ssize_t got = vfu_client_mig_data_read(k->c, k->buf, n);
        check(got < 0 || (size_t)got <= n);
        break;
    }
    case 4:
        vfu_client_mig_data_write(k->c, k->buf, n);
        break;
    case 5:
        vfu_client_mig_read_all(k->c, sink, k);
        break;
    case 6:
        vfu_client_mig_write_all(k->c, k->buf, n);
        break;
    default: {
        /* Source and destination are one server here: it answers both. */
        struct vfio_user_device_feature_dma_logging_range r = {
            .iova = 0, .length = 0x10000,
        };
        struct vfu_client_mig_params p = {
            .max_rounds = (uint32_t)take(&k->in, 1) % 4,
            .converge_bytes = pick_u64(k),
            .ranges = &r, .nr_ranges = (uint32_t)take(&k->in, 1) % 2,
            .page_size = 4096, .on_dirty = on_dirty, .opaque = k,
        };
        struct vfu_client_mig_stats st;
        vfu_client_migrate(k->c, k->c, &p, &st);
    }
    }
}

static void
op_raw(struct client *k, unsigned what)
{
    struct vfio_user_header h;
    uint8_t out[256];
    int fds[4];
    uint32_t nr = (uint32_t)take(&k->in, 1) % 5;
    size_t cap = (size_t)take(&k->in, 1) % (sizeof(out) + 1);
    size_t size = cap;
    static const int timeouts[] = { 0, 1, 5, -1 };

    switch (what) {
    case 0:
        if (vfu_client_recv_raw(k->c, &h, take(&k->in, 1) & 1 ? out : NULL,
                                &size, fds, &nr,
                                timeouts[take(&k->in, 1) % 4]) == 0) {
            touch(out, size < cap ? size : cap);
            check(nr <= 4);
            for (uint32_t i = 0; i < nr; i++) {
                close(fds[i]);
            }
        }
        break;
    case 1:
        vfu_client_poll(k->c, timeouts[take(&k->in, 1) % 4]);
        break;
    case 2: {
        uint16_t cmd = (uint16_t)take(&k->in, 1) % 20;
        if (vfu_client_call(k->c, cmd, k->buf, (size_t)take(&k->in, 1), NULL, 0,
                            out, &size, fds, &nr) == 0) {
            check(size <= cap && nr <= 4);
            touch(out, size);
            for (uint32_t i = 0; i < nr; i++) {
                close(fds[i]);
            }
        }
        break;
    }
    default: {
        uint8_t msg[64];
        size_t len = (size_t)take(&k->in, 1) % sizeof(msg);
        for (size_t i = 0; i < len; i++) {
            msg[i] = (uint8_t)take(&k->in, 1);
        }
        /* nr eventfds along, as a DMA_MAP or SET_IRQS would carry */
        for (uint32_t i = 0; i < nr; i++) {
            fds[i] = eventfd(0, EFD_CLOEXEC);
        }
        vfu_client_send_raw(k->c, msg, len, fds, nr);
        for (uint32_t i = 0; i < nr; i++) {
            close(fds[i]);
        }
        vfu_client_next_msg_id(k->c);
        touch(vfu_client_caps(k->c), sizeof(struct vfu_client_caps));
    }
    }
}

/* A call with fixed arguments, for two threads to make at once. */
static void
simple_call(vfu_client_t *c, unsigned which)
{
    union {
        struct vfio_user_device_info d;
        struct vfio_irq_info q;
        uint8_t b[64];
        uint32_t st;
    } u;

    switch (which % 5) {
    case 0: vfu_client_device_get_info(c, &u.d); break;
    case 1: vfu_client_get_irq_info(c, 0, &u.q); break;
    case 2: vfu_client_region_read(c, 0, 0, u.b, sizeof(u.b)); break;
    case 3: vfu_client_mig_get_state(c, &u.st); break;
    default: vfu_client_device_reset(c);
    }
}

struct side {
    vfu_client_t *c;
    unsigned which;
};

static void *
side_call(void *arg)
{
    struct side *s = arg;

    simple_call(s->c, s->which);
    return NULL;
}

/* Two calls in flight at once: the replies must reach the right caller,
 * whichever thread reads them. */
static void
op_parallel(struct client *k)
{
    struct side s = { .c = k->c, .which = (unsigned)take(&k->in, 1) };
    unsigned mine = (unsigned)take(&k->in, 1);
    pthread_t t;

    if (pthread_create(&t, NULL, side_call, &s) != 0) {
        abort();
    }
    simple_call(k->c, mine);
    pthread_join(t, NULL);
}

static void
run_script(struct client *k)
{
    for (int i = 0; i < MAX_OPS && k->in.left > 0; i++) {
        unsigned op = (unsigned)take(&k->in, 1);
        union {
            struct vfio_user_device_info d;
            struct vfio_irq_info q;
        } u;

        switch (op % 34) {
        case 0: case 1: case 2: op_negotiate(k, op % 34); break;
        case 3: vfu_client_device_get_info(k->c, &u.d); break;
        case 4: op_region_info(k); break;
        case 5:
            vfu_client_get_irq_info(k->c, (uint32_t)take(&k->in, 1) % 6, &u.q);
            break;
        case 6: op_set_irqs(k); break;
        case 7: case 8: case 9: case 10: op_region_rw(k, op % 34 - 7); break;
        case 11: vfu_client_device_reset(k->c); break;
        case 12: op_io_fds(k); break;
        case 13: case 14: op_dma_map(k, op % 34 == 14); break;
        case 15: op_dma_unmap(k); break;
        case 16: op_feature(k); break;
        case 17: case 18: case 19: case 20: op_logging(k, op % 34 - 17); break;
        default:
            if (op % 34 < 29) {
                op_mig(k, op % 34 - 21);
            } else if (op % 34 == 33) {
                op_parallel(k);
            } else {
                op_raw(k, op % 34 - 29);
            }
        }
    }
}

/* ---- one input ---- */

static int
count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    if (d == NULL) {
        abort();
    }
    while ((e = readdir(d)) != NULL) {
        n += e->d_name[0] != '.';
    }
    closedir(d);
    return n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct in in = { .p = data, .left = size };
    size_t script_len = (size_t)take(&in, 2);
    unsigned mode = (unsigned)take(&in, 1);
    char dir[64];
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct server srv = { .budget_ms = WAIT_BUDGET, .half_close = mode & 1 };
    struct client k = { 0 };
    pthread_t tid;
    int before = count_fds();
    int lfd;

    script_len = script_len < in.left ? script_len : in.left;
    k.in = (struct in) { .p = in.p, .left = script_len };
    srv.p = in.p + script_len;
    srv.left = in.left - script_len;

    /* Private to this process, as fuzz_lua's; a crash may leave it. */
    snprintf(dir, sizeof(dir), "/tmp/vfu-fuzz-client-%d", (int)getpid());
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/s", dir);
    mkdir(dir, 0700);
    unlink(sa.sun_path);
    lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(lfd, 1) < 0) {
        abort();
    }
    k.c = vfu_client_connect(sa.sun_path);
    srv.fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    close(lfd);
    unlink(sa.sun_path);
    rmdir(dir);
    if (k.c == NULL || srv.fd < 0 ||
        pthread_create(&tid, NULL, serve, &srv) != 0) {
        abort();
    }

    k.buf = calloc(1, BUF_SIZE);
    if (k.buf == NULL) {
        abort();
    }
    run_script(&k);
    vfu_client_close(k.c);
    pthread_join(tid, NULL);
    for (int i = 0; i < k.nr_maps; i++) {
        free(k.maps[i]);
    }
    free(k.buf);

    if (count_fds() != before) {
        fprintf(stderr, "fuzz_client: %d fds open before the input, %d after\n",
                before, count_fds());
        abort();
    }
    return 0;
}
