/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * Message DMA from the loop's own thread while the client waits for a
 * reply from that loop. QEMU 10.2 is such a client: it serves DMA_READ on
 * its main loop only, which a vCPU waiting for a region access blocks, so
 * neither side would move until QEMU's 5 s timeout (after which QEMU's
 * stream breaks on our late reply). The server gives up on its DMA after
 * VFU_PEER_WAIT_MS (EBUSY to the device), answers the client, and drops
 * the DMA reply when it comes late. A client that answers DMA while it
 * waits is not affected.
 *
 * The test plays the client by hand on a socket pair; the loop runs
 * blocking on a thread of its own; the device's callback for a write at
 * BAR0 offset 0 reads the client's memory by message.
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
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "libvfio-user.h"
#include "private.h"     /* vfu_attach_fd */
#include "harness.h"

#define IOVA     0x10000u
#define N        64u
#define PATTERN  0x5a

struct hdr {
    uint16_t id, cmd;
    uint32_t size, flags, err;
};

struct fx {
    vfu_ctx_t *ctx;
    int fd;                     /* the client's end */
    pthread_t loop;
    bool threaded;              /* the loop on a thread of its own; else NB,
                                 * run by the test between its steps */
    uint64_t sg[8];             /* one dma_sg_t, 8-aligned */
    int dma_errno;              /* of the device's last DMA; -1: none yet */
    char data[N];               /* what it read */
};

/* ---- the device ---- */

static ssize_t
bar0_cb(vfu_ctx_t *ctx, char *buf, size_t count, loff_t off, bool is_write)
{
    struct fx *f = vfu_get_private(ctx);

    if (!is_write) {
        memset(buf, 0, count);
        return (ssize_t)count;
    }
    if (off != 0) {
        return (ssize_t)count;      /* only a write at 0 starts the DMA */
    }
    memset(f->data, 0, sizeof(f->data));
    if (vfu_addr_to_sgl(ctx, (vfu_dma_addr_t)(uintptr_t)IOVA, N,
                        (dma_sg_t *)f->sg, 1, PROT_READ) != 1) {
        __atomic_store_n(&f->dma_errno, errno, __ATOMIC_RELEASE);
        return -1;
    }
    /* Without VFU_SGL_DIRECT_ACCESS, and the map has no fd: by message. */
    __atomic_store_n(&f->dma_errno,
                     vfu_sgl_read(ctx, (dma_sg_t *)f->sg, 1, f->data, 0) == 0
                     ? 0 : errno, __ATOMIC_RELEASE);
    return (ssize_t)count;
}

static void *
loop_thread(void *arg)
{
    struct fx *f = arg;

    while (vfu_run_ctx(f->ctx) >= 0 || errno == EINTR || errno == EBUSY) {
    }
    return NULL;
}

/* ---- the client ---- */

static void
xread(int fd, void *buf, size_t len)
{
    assert_int_equal(harness_raw_read(fd, buf, len, 5000), 0);
}

/* The next message within timeout_ms; its payload in buf. */
static void
next_msg(struct fx *f, struct hdr *h, void *buf, size_t cap, int timeout_ms)
{
    struct pollfd p = { .fd = f->fd, .events = POLLIN };

    assert_int_equal(poll(&p, 1, timeout_ms), 1);
    xread(f->fd, h, sizeof(*h));
    assert_true(h->size >= sizeof(*h) && h->size - sizeof(*h) <= cap);
    xread(f->fd, buf, h->size - sizeof(*h));
}

static void
send_request(struct fx *f, uint16_t id, uint16_t cmd, const void *payload,
             size_t len)
{
    harness_raw_send(f->fd, id, cmd, VFIO_USER_F_TYPE_COMMAND, payload, len,
                     NULL, 0);
}

/* A 4-byte BAR0 access request. */
static void
send_access(struct fx *f, uint16_t id, uint16_t cmd, uint64_t off)
{
    struct {
        struct vfio_user_region_access a;
        uint32_t v;
    } req = { { .offset = off, .region = VFU_PCI_DEV_BAR0_REGION_IDX,
                .count = 4 }, 0x1 };

    send_request(f, id, cmd, &req,
                 cmd == VFIO_USER_REGION_WRITE ? sizeof(req) : sizeof(req.a));
}

/* A 4-byte posted BAR0 write (NO_REPLY): nobody waits for it. */
static void
send_posted_write(struct fx *f, uint16_t id, uint64_t off)
{
    struct {
        struct vfio_user_region_access a;
        uint32_t v;
    } req = { { .offset = off, .region = VFU_PCI_DEV_BAR0_REGION_IDX,
                .count = 4 }, 0x1 };

    harness_raw_send(f->fd, id, VFIO_USER_REGION_WRITE,
                     VFIO_USER_F_TYPE_COMMAND | VFIO_USER_F_NO_REPLY, &req,
                     sizeof(req), NULL, 0);
}

/* The reply to request id, within timeout_ms: its errno. */
static int
expect_reply(struct fx *f, uint16_t id, int timeout_ms)
{
    char buf[256];
    struct hdr h;

    next_msg(f, &h, buf, sizeof(buf), timeout_ms);
    assert_true(h.flags & VFIO_USER_F_TYPE_REPLY);
    assert_int_equal(h.id, id);
    return (h.flags & VFIO_USER_F_ERROR) ? (int)h.err : 0;
}

/* The server's DMA_READ request: its id; addr and count checked. */
static uint16_t
expect_dma_read(struct fx *f)
{
    struct vfio_user_dma_region_access a;
    struct hdr h;

    next_msg(f, &h, &a, sizeof(a), 2000);
    assert_int_equal(h.cmd, VFIO_USER_DMA_READ);
    assert_false(h.flags & VFIO_USER_F_TYPE_REPLY);
    assert_int_equal(a.addr, IOVA);
    assert_int_equal(a.count, N);
    return h.id;
}

/* Answer the server's DMA_READ id in the spec's layout. */
static void
answer_dma_read(struct fx *f, uint16_t id)
{
    struct {
        struct vfio_user_dma_region_access a;
        char data[N];
    } rep = { { .addr = IOVA, .count = N }, { 0 } };

    memset(rep.data, PATTERN, sizeof(rep.data));
    harness_raw_send(f->fd, id, VFIO_USER_DMA_READ, VFIO_USER_F_TYPE_REPLY,
                     &rep, sizeof(rep), NULL, 0);
}

static uint64_t
now_ms(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/* ---- fixture ---- */

/* Serve what the client sent, on the test's thread (non-blocking). */
static void
run_nb(struct fx *f)
{
    assert_true(vfu_run_ctx(f->ctx) >= 0 || errno == EAGAIN);
}

static int
setup_ctx(void **state, bool threaded)
{
    struct fx *f = calloc(1, sizeof(*f));
    /* struct vfio_user_version (major 0, minor 1), then its JSON */
    static const char ver[] = { 0, 0, 1, 0, '{', '}', '\0' };
    struct vfio_user_dma_map map = {
        .argsz = sizeof(map),
        .flags = VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_WRITE,
        .addr = IOVA, .size = 0x1000,
    };
    int sv[2];

    assert_non_null(f);
    f->dma_errno = -1;
    f->threaded = threaded;
    f->ctx = vfu_create_ctx(VFU_TRANS_SOCK, "/tmp/vfu-peer-waits-unused",
                            threaded ? 0 : LIBVFIO_USER_FLAG_ATTACH_NB, f,
                            VFU_DEV_TYPE_PCI);
    assert_non_null(f->ctx);
    harness_log_verbose(f->ctx);
    assert_int_equal(vfu_pci_init(f->ctx, VFU_PCI_TYPE_CONVENTIONAL, 0, 0), 0);
    assert_int_equal(vfu_setup_region(f->ctx, VFU_PCI_DEV_BAR0_REGION_IDX,
                                      0x1000, bar0_cb, VFU_REGION_FLAG_RW |
                                      VFU_REGION_FLAG_MEM, NULL, 0, -1, 0), 0);
    assert_int_equal(vfu_setup_device_dma(f->ctx, 0, NULL, NULL), 0);
    assert_int_equal(vfu_realize_ctx(f->ctx), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    f->fd = sv[1];
    assert_int_equal(vfu_attach_fd(f->ctx, sv[0]), 0);
    if (threaded) {
        assert_int_equal(pthread_create(&f->loop, NULL, loop_thread, f), 0);
    }
    send_request(f, 1, VFIO_USER_VERSION, &ver, sizeof(ver));
    if (!threaded) {
        run_nb(f);
    }
    assert_int_equal(expect_reply(f, 1, 2000), 0);
    send_request(f, 2, VFIO_USER_DMA_MAP, &map, sizeof(map));
    if (!threaded) {
        run_nb(f);
    }
    assert_int_equal(expect_reply(f, 2, 2000), 0);
    *state = f;
    return 0;
}

static int
setup(void **state)
{
    return setup_ctx(state, true);
}

static int
setup_nb(void **state)
{
    return setup_ctx(state, false);
}

static int
teardown(void **state)
{
    struct fx *f = *state;

    close(f->fd);
    if (f->threaded) {
        pthread_join(f->loop, NULL);
    }
    vfu_destroy_ctx(f->ctx);
    free(f);
    return 0;
}

/* ---- tests ---- */

/*
 * QEMU's way: a write whose callback does DMA, a read right behind it, and
 * the DMA answered only once both have their replies. The server must
 * answer well before QEMU's 5 s, fail its DMA with EBUSY, drop the late
 * DMA reply and go on serving.
 */
static void
test_client_waiting_gets_its_reply(void **state)
{
    struct fx *f = *state;
    uint64_t t0 = now_ms();
    uint16_t dma_id;

    send_access(f, 10, VFIO_USER_REGION_WRITE, 0);
    send_access(f, 11, VFIO_USER_REGION_READ, 4);
    dma_id = expect_dma_read(f);
    /* Not answered: like a vCPU holding QEMU's lock, we wait for 10/11. */
    assert_int_equal(expect_reply(f, 10, 3000), 0);
    assert_int_equal(expect_reply(f, 11, 3000), 0);
    assert_true(now_ms() - t0 < 2000);
    assert_int_equal(__atomic_load_n(&f->dma_errno, __ATOMIC_ACQUIRE), EBUSY);
    /* The answer comes late: dropped, and the session goes on. */
    answer_dma_read(f, dma_id);
    send_access(f, 12, VFIO_USER_REGION_READ, 4);
    assert_int_equal(expect_reply(f, 12, 2000), 0);
}

/* A client that serves DMA while it waits is not affected. */
static void
test_client_serving_dma_while_waiting(void **state)
{
    struct fx *f = *state;
    char want[N];

    send_access(f, 20, VFIO_USER_REGION_WRITE, 0);
    send_access(f, 21, VFIO_USER_REGION_READ, 4);
    answer_dma_read(f, expect_dma_read(f));
    assert_int_equal(expect_reply(f, 20, 2000), 0);
    assert_int_equal(expect_reply(f, 21, 2000), 0);
    assert_int_equal(__atomic_load_n(&f->dma_errno, __ATOMIC_ACQUIRE), 0);
    memset(want, PATTERN, sizeof(want));
    assert_memory_equal(f->data, want, N);
}

/*
 * The request whose callback does the DMA wants a reply itself (a config
 * space or I/O BAR write, for QEMU): the client waits for it, the same.
 */
static void
test_request_under_way_waits(void **state)
{
    struct fx *f = *state;
    uint64_t t0 = now_ms();
    uint16_t dma_id;

    send_access(f, 30, VFIO_USER_REGION_WRITE, 0);
    dma_id = expect_dma_read(f);
    assert_int_equal(expect_reply(f, 30, 3000), 0);
    assert_true(now_ms() - t0 < 2000);
    assert_int_equal(__atomic_load_n(&f->dma_errno, __ATOMIC_ACQUIRE), EBUSY);
    answer_dma_read(f, dma_id);
    send_access(f, 31, VFIO_USER_REGION_READ, 4);
    assert_int_equal(expect_reply(f, 31, 2000), 0);
}

/* Nobody waiting (a posted write): the DMA waits as long as it takes. */
static void
test_lone_dma_waits(void **state)
{
    struct fx *f = *state;
    uint16_t dma_id;

    send_posted_write(f, 40, 0);
    dma_id = expect_dma_read(f);
    harness_sleep_ms(2 * VFU_PEER_WAIT_MS);
    answer_dma_read(f, dma_id);
    send_access(f, 41, VFIO_USER_REGION_READ, 4);
    assert_int_equal(expect_reply(f, 41, 2000), 0);
    assert_int_equal(__atomic_load_n(&f->dma_errno, __ATOMIC_ACQUIRE), 0);
}

/* Posted writes queued behind the DMA don't make the client a waiter. */
static void
test_posted_write_is_no_wait(void **state)
{
    struct fx *f = *state;
    uint16_t dma_id;

    send_posted_write(f, 50, 0);
    send_posted_write(f, 51, 8);
    dma_id = expect_dma_read(f);
    harness_sleep_ms(2 * VFU_PEER_WAIT_MS);
    answer_dma_read(f, dma_id);
    send_access(f, 52, VFIO_USER_REGION_READ, 4);
    assert_int_equal(expect_reply(f, 52, 2000), 0);
    assert_int_equal(__atomic_load_n(&f->dma_errno, __ATOMIC_ACQUIRE), 0);
}

/*
 * The loop's own thread between two vfu_run_ctx() calls (a timer of the
 * program's event loop, as in vfu-lua): a request it has not read yet
 * makes it a waiter all the same, as nobody else will answer it.
 */
static void
test_loop_thread_outside_run(void **state)
{
    struct fx *f = *state;
    uint64_t t0;
    char data[N];

    send_access(f, 60, VFIO_USER_REGION_READ, 4);
    assert_int_equal(vfu_addr_to_sgl(f->ctx, (vfu_dma_addr_t)(uintptr_t)IOVA,
                                     N, (dma_sg_t *)f->sg, 1, PROT_READ), 1);
    t0 = now_ms();
    assert_int_equal(vfu_sgl_read(f->ctx, (dma_sg_t *)f->sg, 1, data, 0), -1);
    assert_int_equal(errno, EBUSY);
    assert_true(now_ms() - t0 < 2000);
    run_nb(f);
    answer_dma_read(f, expect_dma_read(f));     /* late: dropped */
    assert_int_equal(expect_reply(f, 60, 2000), 0);
    send_access(f, 61, VFIO_USER_REGION_READ, 4);
    run_nb(f);
    assert_int_equal(expect_reply(f, 61, 2000), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_client_waiting_gets_its_reply,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_serving_dma_while_waiting,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_under_way_waits, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_lone_dma_waits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_posted_write_is_no_wait, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_loop_thread_outside_run, setup_nb,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
