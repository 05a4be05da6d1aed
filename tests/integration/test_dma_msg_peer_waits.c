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
 * blocking on a thread of its own; the device's BAR0 write callback reads
 * the client's memory by message.
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
    uint64_t sg[8];             /* one dma_sg_t, 8-aligned */
    int dma_errno;              /* of the device's last DMA; -1: none yet */
    char data[N];               /* what it read */
};

/* ---- the device ---- */

static ssize_t
bar0_cb(vfu_ctx_t *ctx, char *buf, size_t count, loff_t off, bool is_write)
{
    struct fx *f = vfu_get_private(ctx);

    (void)off;
    if (!is_write) {
        memset(buf, 0, count);
        return (ssize_t)count;
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

static int
setup(void **state)
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
    f->ctx = vfu_create_ctx(VFU_TRANS_SOCK, "/tmp/vfu-peer-waits-unused", 0, f,
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
    assert_int_equal(pthread_create(&f->loop, NULL, loop_thread, f), 0);
    send_request(f, 1, VFIO_USER_VERSION, &ver, sizeof(ver));
    assert_int_equal(expect_reply(f, 1, 2000), 0);
    send_request(f, 2, VFIO_USER_DMA_MAP, &map, sizeof(map));
    assert_int_equal(expect_reply(f, 2, 2000), 0);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;

    close(f->fd);
    pthread_join(f->loop, NULL);
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

/* Nothing else queued: the DMA waits for its reply as long as it takes. */
static void
test_lone_dma_waits(void **state)
{
    struct fx *f = *state;
    uint16_t dma_id;

    send_access(f, 30, VFIO_USER_REGION_WRITE, 0);
    dma_id = expect_dma_read(f);
    harness_sleep_ms(3 * 100);      /* beyond VFU_PEER_WAIT_MS */
    answer_dma_read(f, dma_id);
    assert_int_equal(expect_reply(f, 30, 2000), 0);
    assert_int_equal(__atomic_load_n(&f->dma_errno, __ATOMIC_ACQUIRE), 0);
}

/* A posted write behind the DMA does not make the client a waiter. */
static void
test_posted_write_is_no_wait(void **state)
{
    struct fx *f = *state;
    struct {
        struct vfio_user_region_access a;
        uint32_t v;
    } posted = { { .offset = 8, .region = VFU_PCI_DEV_BAR0_REGION_IDX,
                   .count = 4 }, 0 };
    uint16_t dma_id;

    send_access(f, 40, VFIO_USER_REGION_WRITE, 0);
    harness_raw_send(f->fd, 41, VFIO_USER_REGION_WRITE,
                     VFIO_USER_F_TYPE_COMMAND | VFIO_USER_F_NO_REPLY, &posted,
                     sizeof(posted), NULL, 0);
    dma_id = expect_dma_read(f);
    harness_sleep_ms(3 * 100);
    answer_dma_read(f, dma_id);
    assert_int_equal(expect_reply(f, 40, 2000), 0);
    assert_int_equal(__atomic_load_n(&f->dma_errno, __ATOMIC_ACQUIRE), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_client_waiting_gets_its_reply,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_serving_dma_while_waiting,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_lone_dma_waits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_posted_write_is_no_wait, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
