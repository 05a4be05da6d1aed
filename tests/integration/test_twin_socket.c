/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * The twin socket: message-based DMA on a second socket, negotiated in
 * VERSION. vfu's client against vfu's server, in both directions and from
 * a device thread and the loop; a twin peer that hangs up, answers garbage
 * or says nothing; vfu's client against a server that gets the twin
 * wrong; and the single-socket path for clients that do not ask.
 */

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define PG 4096u
#define RW (VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_WRITE)
#define BAR3 VFU_PCI_DEV_BAR3_REGION_IDX
#define IOVA 0x40000000u
#define LOOP_DMA_LEN 256u

static uint64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * BAR3: writing an address there makes the device, on the loop's thread,
 * read LOOP_DMA_LEN bytes at it by message and write them back one
 * higher each, LOOP_DMA_LEN bytes further on. The client is inside its
 * REGION_WRITE call all the while.
 */
static ssize_t
bar3_access(vfu_ctx_t *ctx, char *buf, size_t count, loff_t off, bool is_write)
{
    char sgbuf[256], data[LOOP_DMA_LEN];
    dma_sg_t *sg = (dma_sg_t *)sgbuf;
    uint64_t iova;

    if (dma_sg_size() > sizeof(sgbuf)) {
        errno = ENOMEM;
        return -1;
    }
    if (!is_write) {
        memset(buf, 0, count);
        return (ssize_t)count;
    }
    if (off != 0 || count != sizeof(iova)) {
        errno = EINVAL;
        return -1;
    }
    memcpy(&iova, buf, sizeof(iova));
    if (vfu_addr_to_sgl(ctx, (vfu_dma_addr_t)(uintptr_t)iova, LOOP_DMA_LEN,
                        sg, 1, PROT_READ) != 1 ||
        vfu_sgl_read(ctx, sg, 1, data, 0) < 0) {
        return -1;
    }
    for (size_t i = 0; i < sizeof(data); i++) {
        data[i]++;
    }
    if (vfu_addr_to_sgl(ctx, (vfu_dma_addr_t)(uintptr_t)(iova + LOOP_DMA_LEN),
                        LOOP_DMA_LEN, sg, 1, PROT_READ | PROT_WRITE) != 1 ||
        vfu_sgl_write(ctx, sg, 1, data, 0) < 0) {
        return -1;
    }
    return (ssize_t)count;
}

static int
setup_dev(vfu_ctx_t *ctx, void *dev)
{
    if (harness_dev_setup(ctx, dev) < 0) {
        return -1;
    }
    return vfu_setup_region(ctx, BAR3, PG, bar3_access, VFU_REGION_FLAG_RW,
                            NULL, 0, -1, 0);
}

struct fixture {
    struct harness_dev dev;
    struct harness_server *s;
    vfu_ctx_t *ctx;
};

static int
setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    assert_int_equal(harness_dev_init(&f->dev), 0);
    f->s = harness_server_start(setup_dev, &f->dev);
    assert_non_null(f->s);
    f->ctx = harness_server_ctx(f->s);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(harness_server_stop(f->s), 0);
    harness_dev_fini(&f->dev);
    free(f);
    return 0;
}

/* A client proposing twin (or not) with max_fds; got is the answer. */
static vfu_client_t *
connect_caps(struct fixture *f, bool twin, uint32_t max_fds,
             struct vfu_client_caps *got)
{
    vfu_client_t *c = vfu_client_connect(harness_server_path(f->s));
    struct vfu_client_caps caps;

    assert_non_null(c);
    vfu_client_default_caps(&caps);
    caps.twin_socket = twin;
    caps.max_msg_fds = max_fds;
    assert_int_equal(vfu_client_negotiate(c, &caps, got), 0);
    return c;
}

/*
 * A client whose VERSION asks for the twin by hand: the twin's fd is the
 * test's, and nobody serves it but the test.
 */
static vfu_client_t *
connect_raw_twin(struct fixture *f, int *twin)
{
    static const char json[] = "{\"capabilities\":{\"max_msg_fds\":8,"
                               "\"twin_socket\":{\"supported\":true}}}";
    struct vfio_user_version v = { 0, 0 };
    char req[sizeof(v) + sizeof(json)], rep[1024];
    size_t rsize = sizeof(rep) - 1;
    int fds[4];
    uint32_t nr = 4;
    vfu_client_t *c = vfu_client_connect(harness_server_path(f->s));

    assert_non_null(c);
    memcpy(req, &v, sizeof(v));
    memcpy(req + sizeof(v), json, sizeof(json));
    assert_int_equal(vfu_client_call(c, VFIO_USER_VERSION, req, sizeof(req),
                                     NULL, 0, rep, &rsize, fds, &nr), 0);
    assert_int_equal(nr, 1);
    rep[rsize] = '\0';
    assert_non_null(strstr(rep + sizeof(v),
                           "\"twin_socket\":{\"supported\":true,\"fd_index\":0}"));
    *twin = fds[0];
    return c;
}

/* The server still answers on the main socket. */
static void
assert_alive(vfu_client_t *c)
{
    struct vfio_user_device_info info;

    assert_int_equal(vfu_client_device_get_info(c, &info), 0);
    assert_int_equal(info.num_regions, VFU_PCI_DEV_NUM_REGIONS);
}

/* ---- message DMA from a device thread ---- */

struct dev_dma {
    vfu_ctx_t *ctx;
    uint64_t iova;
    size_t len;
    char *buf;
    bool write;
    int rc, err;
    uint64_t ms;                /* how long it took */
    pthread_t thr;
};

static void *
dev_dma_main(void *arg)
{
    struct dev_dma *d = arg;
    char sgbuf[256];
    dma_sg_t *sg = (dma_sg_t *)sgbuf;
    uint64_t t0 = now_ms();

    d->rc = vfu_addr_to_sgl(d->ctx, (vfu_dma_addr_t)(uintptr_t)d->iova, d->len,
                            sg, 1, PROT_READ | (d->write ? PROT_WRITE : 0));
    if (d->rc == 1) {
        d->rc = d->write ? vfu_sgl_write(d->ctx, sg, 1, d->buf, 0)
                         : vfu_sgl_read(d->ctx, sg, 1, d->buf, 0);
    } else {
        d->rc = -2;
    }
    d->err = errno;
    d->ms = now_ms() - t0;
    return NULL;
}

static void
dev_dma_start(struct dev_dma *d, vfu_ctx_t *ctx, uint64_t iova, char *buf,
              size_t len, bool write)
{
    *d = (struct dev_dma) { .ctx = ctx, .iova = iova, .len = len, .buf = buf,
                            .write = write };
    assert_int_equal(pthread_create(&d->thr, NULL, dev_dma_main, d), 0);
}

/* Run one device-thread transfer to its end: its rc, errno in *err. */
static int
dev_dma(vfu_ctx_t *ctx, uint64_t iova, char *buf, size_t len, bool write,
        int *err)
{
    struct dev_dma d;

    dev_dma_start(&d, ctx, iova, buf, len, write);
    pthread_join(d.thr, NULL);
    if (err != NULL) {
        *err = d.err;
    }
    return d.rc;
}

/* Client calls on the main socket while the device does DMA. */
struct chatter {
    vfu_client_t *c;
    int stop, calls, failed;
    pthread_t thr;
};

static void *
chatter_main(void *arg)
{
    struct chatter *k = arg;
    uint32_t v;

    while (!__atomic_load_n(&k->stop, __ATOMIC_SEQ_CST)) {
        if (vfu_client_region_read(k->c, VFU_PCI_DEV_BAR0_REGION_IDX, 0, &v,
                                   sizeof(v)) < 0) {
            k->failed++;
        }
        k->calls++;
    }
    return NULL;
}

static void
test_twin_both_ways(void **state)
{
    struct fixture *f = *state;
    const size_t size = (3u << 20) + 5;     /* several max_data_xfer chunks */
    char *local = malloc(size), *back = malloc(size), *src = malloc(size);
    struct vfu_client_caps got;
    vfu_client_t *c = connect_caps(f, true, 16, &got);
    struct chatter k = { .c = c };

    assert_true(got.twin_socket);
    assert_int_equal(got.twin_fd_index, 0);
    assert_true(vfu_client_caps(c)->twin_socket);
    assert_non_null(local);
    for (size_t i = 0; i < size; i++) {
        local[i] = (char)(i * 7);
        src[i] = (char)(i * 13 + 1);
    }
    assert_int_equal(vfu_client_dma_map(c, IOVA, size, RW, -1, 0, local), 0);
    /* Nobody polls the client: its twin thread serves the device. */
    assert_int_equal(pthread_create(&k.thr, NULL, chatter_main, &k), 0);
    assert_int_equal(dev_dma(f->ctx, IOVA, back, size, false, NULL), 0);
    assert_memory_equal(back, local, size);
    assert_int_equal(dev_dma(f->ctx, IOVA, src, size, true, NULL), 0);
    assert_memory_equal(local, src, size);
    __atomic_store_n(&k.stop, 1, __ATOMIC_SEQ_CST);
    pthread_join(k.thr, NULL);
    assert_int_equal(k.failed, 0);
    assert_true(k.calls > 0);
    /* Not even a poll sees a request on the main socket. */
    assert_int_equal(vfu_client_poll(c, 0), 0);
    assert_int_equal(vfu_client_dma_unmap(c, IOVA, size, 0), 0);
    assert_alive(c);
    vfu_client_close(c);
    free(local);
    free(back);
    free(src);
}

/* The loop's own thread does DMA while the client waits for its reply. */
static void
loop_dma(struct fixture *f, vfu_client_t *c)
{
    char mem[2 * LOOP_DMA_LEN];
    uint64_t iova = IOVA;

    for (size_t i = 0; i < LOOP_DMA_LEN; i++) {
        mem[i] = (char)(i * 3);
    }
    memset(mem + LOOP_DMA_LEN, 0, LOOP_DMA_LEN);
    assert_int_equal(vfu_client_dma_map(c, IOVA, PG, RW, -1, 0, mem), 0);
    assert_int_equal(vfu_client_region_write(c, BAR3, 0, &iova, sizeof(iova)), 0);
    /* Unmapped first: the unmap takes the lock the twin thread wrote mem
     * under, which ThreadSanitizer sees (it cannot see the sockets). */
    assert_int_equal(vfu_client_dma_unmap(c, IOVA, PG, 0), 0);
    for (size_t i = 0; i < LOOP_DMA_LEN; i++) {
        assert_int_equal((uint8_t)mem[LOOP_DMA_LEN + i], (uint8_t)(i * 3 + 1));
    }
}

static void
test_twin_from_loop(void **state)
{
    struct fixture *f = *state;
    struct vfu_client_caps got;
    vfu_client_t *c = connect_caps(f, true, 16, &got);

    assert_true(got.twin_socket);
    loop_dma(f, c);
    vfu_client_close(c);
}

/* Without the twin, all of it still works on the main socket. */
static void
test_no_twin(void **state)
{
    struct fixture *f = *state;
    struct vfu_client_caps got;
    char local[PG], back[PG];

    /* Not proposed: none (QEMU's case). */
    vfu_client_t *c = connect_caps(f, false, 16, &got);
    assert_false(got.twin_socket);
    assert_int_equal(got.twin_fd_index, -1);
    loop_dma(f, c);
    vfu_client_close(c);

    /* Proposed by a client that takes no fds: declined, it cannot get it. */
    c = connect_caps(f, true, 0, &got);
    assert_false(got.twin_socket);
    loop_dma(f, c);
    /* A device thread's DMA comes on the main socket: poll serves it. */
    for (size_t i = 0; i < sizeof(local); i++) {
        local[i] = (char)(i ^ 0x5a);
    }
    assert_int_equal(vfu_client_dma_map(c, IOVA, PG, RW, -1, 0, local), 0);
    struct dev_dma d;
    dev_dma_start(&d, f->ctx, IOVA, back, sizeof(back), false);
    for (int i = 0; i < 100 && vfu_client_poll(c, 50) == 0; i++) {
    }
    pthread_join(d.thr, NULL);
    assert_int_equal(d.rc, 0);
    assert_memory_equal(back, local, sizeof(local));
    assert_int_equal(vfu_client_dma_unmap(c, IOVA, PG, 0), 0);
    vfu_client_close(c);
}

/* ---- a hostile twin peer ---- */

/* Read the next request from the raw twin: header and access. */
static void
twin_read_req(int fd, struct vfio_user_header *h,
              struct vfio_user_dma_region_access *a, void *data)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };

    assert_int_equal(poll(&p, 1, 5000), 1);
    assert_int_equal(recv(fd, h, sizeof(*h), MSG_WAITALL), sizeof(*h));
    assert_true(h->msg_size >= sizeof(*h) + sizeof(*a));
    assert_int_equal(recv(fd, a, sizeof(*a), MSG_WAITALL), sizeof(*a));
    size_t rest = h->msg_size - sizeof(*h) - sizeof(*a);
    if (rest > 0) {
        assert_int_equal(recv(fd, data, rest, MSG_WAITALL), (ssize_t)rest);
    }
}

/* Answer a DMA_READ of a->count bytes with data, the header as given. */
static void
twin_reply(int fd, struct vfio_user_header h,
           const struct vfio_user_dma_region_access *a, const void *data,
           size_t len)
{
    char buf[sizeof(h) + sizeof(*a) + PG];

    h.msg_size = (uint32_t)(sizeof(h) + sizeof(*a) + len);
    memcpy(buf, &h, sizeof(h));
    memcpy(buf + sizeof(h), a, sizeof(*a));
    memcpy(buf + sizeof(h) + sizeof(*a), data, len);
    assert_int_equal(send(fd, buf, h.msg_size, MSG_NOSIGNAL), h.msg_size);
}

static struct vfio_user_header
reply_to(const struct vfio_user_header *req)
{
    return (struct vfio_user_header) {
        .msg_id = req->msg_id, .cmd = req->cmd,
        .flags = VFIO_USER_F_TYPE_REPLY,
    };
}

static void
test_twin_peer_closes(void **state)
{
    struct fixture *f = *state;
    int twin, err;
    vfu_client_t *c = connect_raw_twin(f, &twin);
    char buf[64] = { 0 };

    assert_int_equal(vfu_client_dma_map(c, IOVA, PG, RW, -1, 0, NULL), 0);
    close(twin);
    assert_int_equal(dev_dma(f->ctx, IOVA, buf, sizeof(buf), false, &err), -1);
    assert_int_equal(err, ENOTCONN);
    assert_alive(c);
    assert_int_equal(dev_dma(f->ctx, IOVA, buf, sizeof(buf), true, &err), -1);
    assert_int_equal(err, ENOTCONN);
    assert_alive(c);
    vfu_client_close(c);
    /* The next client gets a twin of its own. */
    struct vfu_client_caps got;
    c = connect_caps(f, true, 16, &got);
    assert_true(got.twin_socket);
    loop_dma(f, c);
    vfu_client_close(c);
}

static void
test_twin_peer_garbage(void **state)
{
    struct fixture *f = *state;
    int twin;
    vfu_client_t *c = connect_raw_twin(f, &twin);
    struct vfio_user_header h;
    struct vfio_user_dma_region_access a;
    char data[PG], buf[64];
    struct dev_dma d;

    memset(data, 0x77, sizeof(data));
    assert_int_equal(vfu_client_dma_map(c, IOVA, PG, RW, -1, 0, NULL), 0);

    /* A request of the client's on the twin is dropped; the reply counts. */
    dev_dma_start(&d, f->ctx, IOVA, buf, sizeof(buf), false);
    twin_read_req(twin, &h, &a, NULL);
    assert_int_equal(h.cmd, VFIO_USER_DMA_READ);
    assert_int_equal(a.count, sizeof(buf));
    struct vfio_user_header cmd = { .msg_id = 7, .cmd = VFIO_USER_DEVICE_GET_INFO,
                                    .msg_size = sizeof(cmd),
                                    .flags = VFIO_USER_F_TYPE_COMMAND };
    assert_int_equal(send(twin, &cmd, sizeof(cmd), 0), sizeof(cmd));
    /* A reply nobody asked for is dropped too. */
    struct vfio_user_header stray = reply_to(&h);
    stray.msg_id ^= 0x4242;
    twin_reply(twin, stray, &a, data, sizeof(buf));
    twin_reply(twin, reply_to(&h), &a, data, sizeof(buf));
    pthread_join(d.thr, NULL);
    assert_int_equal(d.rc, 0);
    assert_memory_equal(buf, data, sizeof(buf));

    /* A reply of the wrong size: EINVAL. */
    dev_dma_start(&d, f->ctx, IOVA, buf, sizeof(buf), false);
    twin_read_req(twin, &h, &a, NULL);
    twin_reply(twin, reply_to(&h), &a, data, sizeof(buf) / 2);
    pthread_join(d.thr, NULL);
    assert_int_equal(d.rc, -1);
    assert_int_equal(d.err, EINVAL);

    /* An error reply: its errno. */
    dev_dma_start(&d, f->ctx, IOVA, buf, sizeof(buf), true);
    twin_read_req(twin, &h, &a, data);
    assert_int_equal(h.cmd, VFIO_USER_DMA_WRITE);
    struct vfio_user_header e = reply_to(&h);
    e.flags |= VFIO_USER_F_ERROR;
    e.error_no = EIO;
    twin_reply(twin, e, &a, data, 0);
    pthread_join(d.thr, NULL);
    assert_int_equal(d.rc, -1);
    assert_int_equal(d.err, EIO);
    assert_alive(c);

    /* A header that frames nothing: EPROTO, and the twin stays broken. */
    dev_dma_start(&d, f->ctx, IOVA, buf, sizeof(buf), false);
    twin_read_req(twin, &h, &a, NULL);
    struct vfio_user_header bad = reply_to(&h);
    bad.msg_size = 3;
    assert_int_equal(send(twin, &bad, sizeof(bad), 0), sizeof(bad));
    pthread_join(d.thr, NULL);
    assert_int_equal(d.rc, -1);
    assert_int_equal(d.err, EPROTO);
    dev_dma_start(&d, f->ctx, IOVA, buf, sizeof(buf), false);
    pthread_join(d.thr, NULL);
    assert_int_equal(d.rc, -1);
    assert_int_equal(d.err, EPROTO);
    assert_true(d.ms < 5000);
    /* The main socket never noticed. */
    assert_alive(c);
    assert_int_equal(vfu_client_dma_unmap(c, IOVA, PG, 0), 0);
    close(twin);
    vfu_client_close(c);
}

static void
test_twin_peer_silent(void **state)
{
    struct fixture *f = *state;
    int twin;
    vfu_client_t *c = connect_raw_twin(f, &twin);
    struct vfio_user_header h, late;
    struct vfio_user_dma_region_access a, late_a;
    char data[64], buf[64];
    struct dev_dma d;

    memset(data, 0x33, sizeof(data));
    assert_int_equal(vfu_client_dma_map(c, IOVA, PG, RW, -1, 0, NULL), 0);
    dev_dma_start(&d, f->ctx, IOVA, buf, sizeof(buf), false);
    twin_read_req(twin, &late, &late_a, NULL);
    /* While the device waits for the twin, the loop serves the client. */
    for (int i = 0; i < 20; i++) {
        assert_alive(c);
    }
    pthread_join(d.thr, NULL);
    assert_int_equal(d.rc, -1);
    assert_int_equal(d.err, ETIMEDOUT);
    assert_true(d.ms >= 9000 && d.ms < 20000);

    /* The answer comes too late: dropped; the next call has its own. */
    char stale[sizeof(buf)];
    memset(stale, 'L', sizeof(stale));
    twin_reply(twin, reply_to(&late), &late_a, stale, sizeof(stale));
    dev_dma_start(&d, f->ctx, IOVA, buf, sizeof(buf), false);
    twin_read_req(twin, &h, &a, NULL);
    assert_int_not_equal(h.msg_id, late.msg_id);
    twin_reply(twin, reply_to(&h), &a, data, sizeof(buf));
    pthread_join(d.thr, NULL);
    assert_int_equal(d.rc, 0);
    assert_memory_equal(buf, data, sizeof(buf));
    close(twin);
    vfu_client_close(c);
}

/* The client hangs up its main socket while the device waits on the twin:
 * the device's call ends at once, the twin goes with the connection. */
static void
test_twin_main_hangup(void **state)
{
    struct fixture *f = *state;
    int twin;
    vfu_client_t *c = connect_raw_twin(f, &twin);
    struct vfio_user_header h;
    struct vfio_user_dma_region_access a;
    char buf[64], x;
    struct dev_dma d;

    assert_int_equal(vfu_client_dma_map(c, IOVA, PG, RW, -1, 0, NULL), 0);
    dev_dma_start(&d, f->ctx, IOVA, buf, sizeof(buf), false);
    twin_read_req(twin, &h, &a, NULL);
    vfu_client_close(c);
    pthread_join(d.thr, NULL);
    assert_int_equal(d.rc, -1);
    assert_int_equal(d.err, ENOTCONN);
    assert_true(d.ms < 5000);
    /* Our end of the twin sees the server's close. */
    struct pollfd p = { .fd = twin, .events = POLLIN };
    assert_int_equal(poll(&p, 1, 5000), 1);
    assert_int_equal(recv(twin, &x, 1, 0), 0);
    close(twin);
    struct vfu_client_caps got;
    c = connect_caps(f, true, 16, &got);
    assert_true(got.twin_socket);
    loop_dma(f, c);
    vfu_client_close(c);
}

/* The server keeps no fd of a twin client that is gone. */
static void
test_twin_no_fd_left(void **state)
{
    struct harness_dev dev;
    struct harness_server *s;
    struct vfu_client_caps caps, got;

    (void)state;
    assert_int_equal(harness_dev_init(&dev), 0);
    s = harness_server_start_process(setup_dev, &dev);
    assert_non_null(s);
    pid_t pid = harness_server_pid(s);
    int base = harness_fd_count(pid);
    int mine = harness_fd_count(0);
    for (int i = 0; i < 3; i++) {
        vfu_client_t *c = vfu_client_connect(harness_server_path(s));
        assert_non_null(c);
        vfu_client_default_caps(&caps);
        caps.twin_socket = true;
        assert_int_equal(vfu_client_negotiate(c, &caps, &got), 0);
        assert_true(got.twin_socket);
        assert_alive(c);
        vfu_client_close(c);
        harness_assert_fd_count(pid, base, 5000);
    }
    /* Nor does the client. */
    assert_int_equal(harness_fd_count(0), mine);
    assert_int_equal(harness_server_stop(s), 0);
    harness_dev_fini(&dev);
}

/* ---- vfu's client against a server that gets the twin wrong ---- */

struct fake {
    char dir[64], path[96];
    int listen_fd;
    const char *json;           /* the VERSION answer's capabilities */
    int fd;                     /* passed with it, or -1 */
    pthread_t thread;
};

static void *
fake_main(void *arg)
{
    struct fake *f = arg;
    int fd = accept(f->listen_fd, NULL, NULL);
    struct vfio_user_header h;
    char body[4096];

    if (fd < 0) {
        return NULL;
    }
    if (recv(fd, &h, sizeof(h), MSG_WAITALL) == sizeof(h) &&
        h.msg_size >= sizeof(h) && h.msg_size - sizeof(h) <= sizeof(body) &&
        recv(fd, body, h.msg_size - sizeof(h), MSG_WAITALL) ==
            (ssize_t)(h.msg_size - sizeof(h))) {
        char rep[sizeof(h) + sizeof(struct vfio_user_version) + 512];
        struct vfio_user_version v = { 0, 0 };
        size_t jlen = strlen(f->json) + 1;
        struct vfio_user_header r = reply_to(&h);
        r.msg_size = (uint32_t)(sizeof(r) + sizeof(v) + jlen);
        memcpy(rep, &r, sizeof(r));
        memcpy(rep + sizeof(r), &v, sizeof(v));
        memcpy(rep + sizeof(r) + sizeof(v), f->json, jlen);
        char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
        struct iovec iov = { .iov_base = rep, .iov_len = r.msg_size };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        if (f->fd >= 0) {
            mh.msg_control = cbuf;
            mh.msg_controllen = sizeof(cbuf);
            struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
            cm->cmsg_level = SOL_SOCKET;
            cm->cmsg_type = SCM_RIGHTS;
            cm->cmsg_len = CMSG_LEN(sizeof(int));
            memcpy(CMSG_DATA(cm), &f->fd, sizeof(int));
        }
        if (sendmsg(fd, &mh, MSG_NOSIGNAL) < 0) {
            /* the client sees no answer: the test fails there */
        }
        /* Until the client goes. */
        while (recv(fd, body, sizeof(body), 0) > 0) {
        }
    }
    close(fd);
    return NULL;
}

/* Negotiate (proposing the twin or not) against a fake answering json
 * with fd: the errno of the failure, or 0. */
static int
against_fake(const char *json, int fd, bool propose)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct fake f = { .json = json, .fd = fd };
    struct vfu_client_caps caps, got;
    int rc, err = 0;

    strcpy(f.dir, "/tmp/vfu-twin-XXXXXX");
    assert_non_null(mkdtemp(f.dir));
    snprintf(f.path, sizeof(f.path), "%s/s", f.dir);
    strcpy(sa.sun_path, f.path);
    f.listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(f.listen_fd >= 0);
    assert_int_equal(bind(f.listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(f.listen_fd, 1), 0);
    assert_int_equal(pthread_create(&f.thread, NULL, fake_main, &f), 0);

    vfu_client_t *c = vfu_client_connect(f.path);
    assert_non_null(c);
    vfu_client_default_caps(&caps);
    caps.twin_socket = propose;
    rc = vfu_client_negotiate(c, &caps, &got);
    if (rc < 0) {
        err = errno;
    } else {
        assert_int_equal(got.twin_socket, propose);
    }
    vfu_client_close(c);
    pthread_join(f.thread, NULL);
    close(f.listen_fd);
    unlink(f.path);
    rmdir(f.dir);
    return err;
}

static void
test_client_vs_bad_twin(void **state)
{
    static const char twin0[] = "{\"capabilities\":{\"max_msg_fds\":8,"
        "\"twin_socket\":{\"supported\":true,\"fd_index\":0}}}";
    static const char twin1[] = "{\"capabilities\":{\"max_msg_fds\":8,"
        "\"twin_socket\":{\"supported\":true,\"fd_index\":1}}}";
    static const char noindex[] = "{\"capabilities\":{\"max_msg_fds\":8,"
        "\"twin_socket\":{\"supported\":true}}}";
    int sv[2], efd = eventfd(0, EFD_CLOEXEC);
    int mine;

    (void)state;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    mine = harness_fd_count(0);
    /* Agreed to, though nobody asked. */
    assert_int_equal(against_fake(twin0, sv[1], false), EPROTO);
    /* Agreed to without an fd, or an index past the fds, or no index. */
    assert_int_equal(against_fake(twin0, -1, true), EPROTO);
    assert_int_equal(against_fake(twin1, sv[1], true), EPROTO);
    assert_int_equal(against_fake(noindex, sv[1], true), EPROTO);
    /* An fd that is no socket. */
    assert_int_equal(against_fake(twin0, efd, true), EPROTO);
    /* And right: the twin works (the client answers on it). */
    assert_int_equal(against_fake(twin0, sv[1], true), 0);
    /* Every fd that came with an answer was closed again. */
    assert_int_equal(harness_fd_count(0), mine);
    close(sv[0]);
    close(sv[1]);
    close(efd);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_twin_both_ways, setup, teardown),
        cmocka_unit_test_setup_teardown(test_twin_from_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_twin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_twin_peer_closes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_twin_peer_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_twin_peer_silent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_twin_main_hangup, setup, teardown),
        cmocka_unit_test(test_twin_no_fd_left),
        cmocka_unit_test(test_client_vs_bad_twin),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
