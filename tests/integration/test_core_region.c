/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * REGION_READ/WRITE (BARs and config space), posted writes, pipelining,
 * WRITE_MULTI, concurrent clients threads, RESET, quiesce, IO_FDS and
 * reconnection.
 */

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define WAIT_MS 2000

static void
test_bar_rw(void **state)
{
    struct harness_fixture *f = *state;
    uint32_t v = 0xdeadbeef, r = 0;

    assert_int_equal(vfu_client_region_write(f->c, 0, 0x10, &v, sizeof(v)), 0);
    assert_int_equal(vfu_client_region_read(f->c, 0, 0x10, &r, sizeof(r)), 0);
    assert_int_equal(r, v);
    assert_memory_equal(f->dev.bar0 + 0x10, &v, sizeof(v));
    /* Last byte of the region. */
    uint8_t b = 0x5a;
    assert_int_equal(vfu_client_region_write(f->c, 0, HARNESS_BAR0_SIZE - 1,
                                             &b, 1), 0);
    b = 0;
    assert_int_equal(vfu_client_region_read(f->c, 0, HARNESS_BAR0_SIZE - 1,
                                            &b, 1), 0);
    assert_int_equal(b, 0x5a);
}

static void
test_bar_large(void **state)
{
    struct harness_fixture *f = *state;
    size_t n = 1u << 20;            /* the negotiated maximum, one message */
    uint8_t *buf = malloc(n), *back = malloc(n);

    for (size_t i = 0; i < n; i++) {
        buf[i] = (uint8_t)(i ^ (i >> 8));
    }
    assert_int_equal(vfu_client_region_write(f->c, 2, 4096, buf, n), 0);
    assert_int_equal(vfu_client_region_read(f->c, 2, 4096, back, n), 0);
    assert_memory_equal(buf, back, n);
    assert_memory_equal(f->dev.bar2 + 4096, buf, n);
    free(buf);
    free(back);
}

static void
test_bar_out_of_range(void **state)
{
    struct harness_fixture *f = *state;
    uint32_t v = 0;

    errno = 0;
    assert_int_equal(vfu_client_region_read(f->c, 0, HARNESS_BAR0_SIZE - 2,
                                            &v, 4), -1);
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_int_equal(vfu_client_region_write(f->c, 0, UINT64_MAX - 1, &v, 4), -1);
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_int_equal(vfu_client_region_read(f->c, 9, 0, &v, 4), -1);
    assert_int_equal(errno, EINVAL);
    /* Unused BAR3. */
    errno = 0;
    assert_int_equal(vfu_client_region_read(f->c, 3, 0, &v, 4), -1);
    assert_int_equal(errno, EINVAL);
    /* Still serving. */
    assert_int_equal(vfu_client_region_read(f->c, 0, 0, &v, 4), 0);
}

/* An access of 0 bytes inside a region succeeds and moves nothing. */
static void
test_bar_zero_count(void **state)
{
    struct harness_fixture *f = *state;
    struct vfio_user_region_access req = { .offset = HARNESS_BAR0_SIZE,
                                           .region = 0, .count = 0 };
    struct vfio_user_region_access rep;
    size_t size = sizeof(rep);

    assert_int_equal(vfu_client_call(f->c, VFIO_USER_REGION_READ, &req,
                                     sizeof(req), NULL, 0, &rep, &size, NULL,
                                     NULL), 0);
    assert_int_equal(size, sizeof(rep));
    assert_int_equal(rep.count, 0);
    size = sizeof(rep);
    assert_int_equal(vfu_client_call(f->c, VFIO_USER_REGION_WRITE, &req,
                                     sizeof(req), NULL, 0, &rep, &size, NULL,
                                     NULL), 0);
    assert_int_equal(size, sizeof(rep));
    assert_int_equal(rep.count, 0);
    /* past the end is still past the end */
    req.offset = HARNESS_BAR0_SIZE + 1;
    size = sizeof(rep);
    errno = 0;
    assert_int_equal(vfu_client_call(f->c, VFIO_USER_REGION_READ, &req,
                                     sizeof(req), NULL, 0, &rep, &size, NULL,
                                     NULL), -1);
    assert_int_equal(errno, EINVAL);
}

/* A BAR whose callback claims every read without filling the buffer. */
static ssize_t
lazy_bar(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset,
         bool is_write)
{
    (void)ctx; (void)buf; (void)offset; (void)is_write;
    return (ssize_t)count;
}

static ssize_t
full_bar(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset,
         bool is_write)
{
    (void)ctx; (void)offset;
    if (!is_write) {
        memset(buf, 0xa5, count);
    }
    return (ssize_t)count;
}

static int
lazy_setup(vfu_ctx_t *ctx, void *arg)
{
    (void)arg;
    if (vfu_pci_init(ctx, VFU_PCI_TYPE_CONVENTIONAL, PCI_HEADER_TYPE_NORMAL,
                     0) < 0 ||
        vfu_setup_region(ctx, VFU_PCI_DEV_BAR0_REGION_IDX, 0x100, full_bar,
                         VFU_REGION_FLAG_RW, NULL, 0, -1, 0) < 0 ||
        vfu_setup_region(ctx, VFU_PCI_DEV_BAR2_REGION_IDX, 0x100, lazy_bar,
                         VFU_REGION_FLAG_RW, NULL, 0, -1, 0) < 0) {
        return -1;
    }
    return 0;
}

/*
 * Bytes a read callback counts but leaves alone read as zero, as they do
 * with libvfio-user (its gpio sample fills only offset 0 of BAR2), never
 * as what an earlier reply left in the server's buffers.
 */
static void
test_read_unfilled_is_zero(void **state)
{
    (void)state;
    struct harness_server *s = harness_server_start(lazy_setup, NULL);
    assert_non_null(s);
    vfu_client_t *c = harness_connect(s);
    assert_non_null(c);
    uint8_t buf[64], zero[64] = { 0 };

    assert_int_equal(vfu_client_region_read(c, 0, 0, buf, sizeof(buf)), 0);
    assert_int_equal(buf[0], 0xa5);
    memset(buf, 0x5a, sizeof(buf));
    assert_int_equal(vfu_client_region_read(c, 2, 0, buf, sizeof(buf)), 0);
    assert_memory_equal(buf, zero, sizeof(buf));
    vfu_client_close(c);
    harness_server_stop(s);
}

static void
test_config_space(void **state)
{
    struct harness_fixture *f = *state;
    uint8_t cfg[256];

    assert_int_equal(vfu_client_region_read(f->c, VFU_PCI_DEV_CFG_REGION_IDX,
                                            0, cfg, sizeof(cfg)), 0);
    assert_int_equal(cfg[0] | cfg[1] << 8, 0x1234);
    assert_int_equal(cfg[2] | cfg[3] << 8, 0x5678);
    assert_int_equal(cfg[0x0b], 0x02);
    assert_int_equal(cfg[0x2c] | cfg[0x2d] << 8, 0x1234);
    assert_int_equal(cfg[0x2e] | cfg[0x2f] << 8, 0x0001);
    /* The command register is writable. */
    uint16_t cmd = 0x0006;
    assert_int_equal(vfu_client_region_write(f->c, VFU_PCI_DEV_CFG_REGION_IDX,
                                             4, &cmd, 2), 0);
    cmd = 0;
    assert_int_equal(vfu_client_region_read(f->c, VFU_PCI_DEV_CFG_REGION_IDX,
                                            4, &cmd, 2), 0);
    assert_int_equal(cmd & 0x6, 0x6);
    /* Beyond 256 bytes of a conventional device. */
    errno = 0;
    assert_int_equal(vfu_client_region_read(f->c, VFU_PCI_DEV_CFG_REGION_IDX,
                                            254, cfg, 4), -1);
    assert_int_equal(errno, EINVAL);
}

static void
test_posted_write(void **state)
{
    struct harness_fixture *f = *state;
    struct vfio_user_header h;
    uint32_t v = 0x11223344, r = 0;
    size_t size = 0;

    assert_int_equal(vfu_client_region_write_posted(f->c, 0, 0x40, &v, 4), 0);
    /* No reply is sent for it. */
    errno = 0;
    assert_int_equal(vfu_client_recv_raw(f->c, &h, NULL, &size, NULL, NULL,
                                         200), -1);
    assert_int_equal(errno, ETIMEDOUT);
    /* It was processed before the next request. */
    assert_int_equal(vfu_client_region_read(f->c, 0, 0x40, &r, 4), 0);
    assert_int_equal(r, v);

    /* A failing posted write gets no reply either. */
    assert_int_equal(vfu_client_region_write_posted(f->c, 0, UINT64_MAX, &v, 4), 0);
    errno = 0;
    assert_int_equal(vfu_client_recv_raw(f->c, &h, NULL, &size, NULL, NULL,
                                         200), -1);
    assert_int_equal(errno, ETIMEDOUT);
}

static void
test_pipelining(void **state)
{
    struct harness_fixture *f = *state;
    enum { N = 8 };
    uint16_t ids[N];

    for (int i = 0; i < N; i++) {
        f->dev.bar0[0x100 + i] = (uint8_t)(0x80 + i);
    }
    for (int i = 0; i < N; i++) {
        struct {
            struct vfio_user_header h;
            struct vfio_user_region_access a;
        } __attribute__((packed)) m = {
            .h = { .cmd = VFIO_USER_REGION_READ, .msg_size = sizeof(m) },
            .a = { .offset = 0x100 + i, .region = 0, .count = 1 },
        };
        ids[i] = m.h.msg_id = vfu_client_next_msg_id(f->c);
        assert_int_equal(vfu_client_send_raw(f->c, &m, sizeof(m), NULL, 0), 0);
    }
    /* Replies come in order, each for its own request. */
    for (int i = 0; i < N; i++) {
        struct vfio_user_header h;
        uint8_t buf[32];
        size_t size = sizeof(buf);
        assert_int_equal(vfu_client_recv_raw(f->c, &h, buf, &size, NULL, NULL,
                                             WAIT_MS), 0);
        assert_int_equal(h.msg_id, ids[i]);
        assert_int_equal(h.flags & VFIO_USER_F_TYPE_MASK, VFIO_USER_F_TYPE_REPLY);
        assert_false(h.flags & VFIO_USER_F_ERROR);
        assert_int_equal(size, 17);
        assert_int_equal(buf[16], 0x80 + i);
    }
}

static void
test_write_multi(void **state)
{
    struct harness_fixture *f = *state;
    struct vfio_user_write_multi_one w[3] = {
        { .offset = 0x200, .region = 0, .count = 4, .data = { 1, 2, 3, 4 } },
        { .offset = 0x208, .region = 0, .count = 8,
          .data = { 9, 8, 7, 6, 5, 4, 3, 2 } },
        { .offset = 0x300, .region = 2, .count = 1, .data = { 0x77 } },
    };

    assert_int_equal(vfu_client_region_write_multi(f->c, w, 3), 3);
    assert_memory_equal(f->dev.bar0 + 0x200, w[0].data, 4);
    assert_memory_equal(f->dev.bar0 + 0x208, w[1].data, 8);
    assert_int_equal(f->dev.bar2[0x300], 0x77);

    /* An entry with count 9 is malformed. */
    w[1].count = 9;
    errno = 0;
    assert_int_equal(vfu_client_region_write_multi(f->c, w, 3), -1);
    assert_int_equal(errno, EINVAL);
}

struct rw_thread {
    vfu_client_t *c;
    unsigned id;
    int failures;
};

static void *
rw_loop(void *opaque)
{
    struct rw_thread *t = opaque;

    for (unsigned i = 0; i < 200; i++) {
        uint64_t v = ((uint64_t)t->id << 32) | i, r = 0;
        uint64_t off = 0x10000 * (t->id + 1) + 8 * (i % 64);
        if (vfu_client_region_write(t->c, 2, off, &v, 8) < 0 ||
            vfu_client_region_read(t->c, 2, off, &r, 8) < 0 || r != v) {
            t->failures++;
        }
    }
    return NULL;
}

static void
test_threads(void **state)
{
    struct harness_fixture *f = *state;
    enum { N = 4 };
    pthread_t th[N];
    struct rw_thread t[N];

    for (unsigned i = 0; i < N; i++) {
        t[i] = (struct rw_thread) { .c = f->c, .id = i };
        assert_int_equal(pthread_create(&th[i], NULL, rw_loop, &t[i]), 0);
    }
    for (unsigned i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(t[i].failures, 0);
    }
}

static void
test_reset(void **state)
{
    struct harness_fixture *f = *state;

    assert_int_equal(vfu_client_device_reset(f->c), 0);
    assert_int_equal(__atomic_load_n(&f->dev.reset_calls, __ATOMIC_SEQ_CST), 1);
    assert_int_equal(__atomic_load_n(&f->dev.last_reset_type, __ATOMIC_SEQ_CST),
                     VFU_RESET_DEVICE);
    assert_true(__atomic_load_n(&f->dev.quiesce_calls, __ATOMIC_SEQ_CST) >= 1);

    /* A failing reset callback fails the request with its errno. */
    __atomic_store_n(&f->dev.reset_errno, EIO, __ATOMIC_SEQ_CST);
    errno = 0;
    assert_int_equal(vfu_client_device_reset(f->c), -1);
    assert_int_equal(errno, EIO);
}

static void
complete_quiesce(vfu_ctx_t *ctx, void *arg)
{
    int *rc = arg;
    struct harness_dev *d = vfu_get_private(ctx);

    __atomic_store_n(&d->quiesce_busy, 0, __ATOMIC_SEQ_CST);
    *rc = vfu_device_quiesced(ctx, 0);
}

static void
test_quiesce_async(void **state)
{
    struct harness_fixture *f = *state;
    struct {
        struct vfio_user_header h;
    } m = { .h = { .cmd = VFIO_USER_DEVICE_RESET, .msg_size = 16 } };
    struct vfio_user_header h;
    size_t size = 0;
    int rc = -1;

    __atomic_store_n(&f->dev.quiesce_busy, 1, __ATOMIC_SEQ_CST);
    m.h.msg_id = vfu_client_next_msg_id(f->c);
    assert_int_equal(vfu_client_send_raw(f->c, &m, sizeof(m), NULL, 0), 0);
    for (int i = 0; i < 200 && harness_server_busy_count(f->srv) == 0; i++) {
        harness_sleep_ms(10);
    }
    /* vfu_run_ctx() said EBUSY and the reset waits for the device. */
    assert_true(harness_server_busy_count(f->srv) >= 1);
    assert_int_equal(__atomic_load_n(&f->dev.reset_calls, __ATOMIC_SEQ_CST), 0);
    errno = 0;
    assert_int_equal(vfu_client_recv_raw(f->c, &h, NULL, &size, NULL, NULL,
                                         200), -1);
    assert_int_equal(errno, ETIMEDOUT);

    assert_int_equal(harness_server_exec(f->srv, complete_quiesce, &rc), 0);
    assert_int_equal(rc, 0);
    assert_int_equal(vfu_client_recv_raw(f->c, &h, NULL, &size, NULL, NULL,
                                         WAIT_MS), 0);
    assert_int_equal(h.msg_id, m.h.msg_id);
    assert_false(h.flags & VFIO_USER_F_ERROR);
    assert_int_equal(__atomic_load_n(&f->dev.reset_calls, __ATOMIC_SEQ_CST), 1);
    assert_int_equal(__atomic_load_n(&f->dev.last_reset_type, __ATOMIC_SEQ_CST),
                     VFU_RESET_DEVICE);
    /* Business as usual afterwards. */
    uint32_t v;
    assert_int_equal(vfu_client_region_read(f->c, 0, 0, &v, 4), 0);
}

static void
fail_quiesce(vfu_ctx_t *ctx, void *arg)
{
    int *rc = arg;
    struct harness_dev *d = vfu_get_private(ctx);

    __atomic_store_n(&d->quiesce_busy, 0, __ATOMIC_SEQ_CST);
    *rc = vfu_device_quiesced(ctx, EIO);
}

/* A device that fails to quiesce fails the request with its errno; the
 * call that says so succeeds, and the device is reset. */
static void
test_quiesce_async_error(void **state)
{
    struct harness_fixture *f = *state;
    struct vfio_user_header m = { .cmd = VFIO_USER_DEVICE_RESET,
                                  .msg_size = 16 };
    struct vfio_user_header h;
    size_t size = 0;
    int rc = -1;

    __atomic_store_n(&f->dev.quiesce_busy, 1, __ATOMIC_SEQ_CST);
    m.msg_id = vfu_client_next_msg_id(f->c);
    assert_int_equal(vfu_client_send_raw(f->c, &m, sizeof(m), NULL, 0), 0);
    for (int i = 0; i < 200 && harness_server_busy_count(f->srv) == 0; i++) {
        harness_sleep_ms(10);
    }
    assert_true(harness_server_busy_count(f->srv) >= 1);
    assert_int_equal(harness_server_exec(f->srv, fail_quiesce, &rc), 0);
    assert_int_equal(rc, 0);
    assert_int_equal(vfu_client_recv_raw(f->c, &h, NULL, &size, NULL, NULL,
                                         WAIT_MS), 0);
    assert_int_equal(h.msg_id, m.msg_id);
    assert_true(h.flags & VFIO_USER_F_ERROR);
    assert_int_equal(h.error_no, EIO);
    assert_int_equal(__atomic_load_n(&f->dev.reset_calls, __ATOMIC_SEQ_CST), 1);
    uint32_t v;
    assert_int_equal(vfu_client_region_read(f->c, 0, 0, &v, 4), 0);
}

/*
 * A client that goes away: the device is quiesced before its DMA is
 * dropped, and if that is deferred (EBUSY) the reset with LOST_CONN waits
 * for vfu_device_quiesced().
 */
static void
test_quiesce_lost_client(void **state)
{
    struct harness_fixture *f = *state;
    int rc = -1;

    assert_int_equal(vfu_client_dma_map(f->c, 0x100000, 0x1000,
                                        VFIO_USER_F_DMA_REGION_READ |
                                        VFIO_USER_F_DMA_REGION_WRITE,
                                        -1, 0, NULL), 0);
    unsigned q0 = __atomic_load_n(&f->dev.quiesce_calls, __ATOMIC_SEQ_CST);
    __atomic_store_n(&f->dev.quiesce_busy, 1, __ATOMIC_SEQ_CST);
    vfu_client_close(f->c);
    f->c = NULL;
    for (int i = 0; i < 200 && harness_server_busy_count(f->srv) == 0; i++) {
        harness_sleep_ms(10);
    }
    assert_true(harness_server_busy_count(f->srv) >= 1);
    assert_int_equal(__atomic_load_n(&f->dev.quiesce_calls, __ATOMIC_SEQ_CST),
                     q0 + 1);
    assert_int_equal(__atomic_load_n(&f->dev.reset_calls, __ATOMIC_SEQ_CST), 0);
    assert_int_equal(__atomic_load_n(&f->dev.dma_unregisters, __ATOMIC_SEQ_CST),
                     0);

    assert_int_equal(harness_server_exec(f->srv, complete_quiesce, &rc), 0);
    assert_int_equal(rc, 0);
    assert_int_equal(__atomic_load_n(&f->dev.reset_calls, __ATOMIC_SEQ_CST), 1);
    assert_int_equal(__atomic_load_n(&f->dev.last_reset_type, __ATOMIC_SEQ_CST),
                     VFU_RESET_LOST_CONN);
    assert_int_equal(__atomic_load_n(&f->dev.dma_unregisters, __ATOMIC_SEQ_CST),
                     1);
    assert_int_equal(__atomic_load_n(&f->dev.quiesce_calls, __ATOMIC_SEQ_CST),
                     q0 + 1);
    /* The next client is served. */
    f->c = harness_connect(f->srv);
    uint32_t v;
    assert_int_equal(vfu_client_region_read(f->c, 0, 0, &v, 4), 0);
}

/*
 * Initiate-FLR written through config space resets the device, and like
 * DEVICE_RESET it waits for the device to quiesce first.
 */
static void
test_flr_quiesces(void **state)
{
    struct harness_dev *dev = calloc(1, sizeof(*dev));
    struct harness_server *srv;
    vfu_client_t *c;
    uint16_t devctl = 0x2010, flr = 0x8000;
    struct {
        struct vfio_user_header h;
        struct vfio_user_region_access a;
        uint16_t v;
    } __attribute__((packed)) m = {
        .h = { .cmd = VFIO_USER_REGION_WRITE, .msg_size = sizeof(m) },
        .a = { .offset = 0x48, .region = VFU_PCI_DEV_CFG_REGION_IDX, .count = 2 },
        .v = 0x8000,
    };
    struct vfio_user_header h;
    size_t size = 0;
    int rc = -1;

    (void)state;
    assert_non_null(dev);
    assert_int_equal(harness_dev_init(dev), 0);
    srv = harness_server_start(harness_dev_setup_express, dev);
    assert_non_null(srv);
    c = harness_connect(srv);

    /* Device control without Initiate-FLR: neither quiesce nor reset. */
    assert_int_equal(vfu_client_region_write(c, VFU_PCI_DEV_CFG_REGION_IDX,
                                             0x48, &devctl, 2), 0);
    assert_int_equal(__atomic_load_n(&dev->quiesce_calls, __ATOMIC_SEQ_CST), 0);
    assert_int_equal(__atomic_load_n(&dev->reset_calls, __ATOMIC_SEQ_CST), 0);

    assert_int_equal(vfu_client_region_write(c, VFU_PCI_DEV_CFG_REGION_IDX,
                                             0x48, &flr, 2), 0);
    assert_int_equal(__atomic_load_n(&dev->reset_calls, __ATOMIC_SEQ_CST), 1);
    assert_int_equal(__atomic_load_n(&dev->last_reset_type, __ATOMIC_SEQ_CST),
                     VFU_RESET_PCI_FLR);
    assert_int_equal(__atomic_load_n(&dev->quiesce_calls_at_reset,
                                     __ATOMIC_SEQ_CST), 1);

    /* A device that is busy holds the FLR until it says it has quiesced. */
    __atomic_store_n(&dev->quiesce_busy, 1, __ATOMIC_SEQ_CST);
    m.h.msg_id = vfu_client_next_msg_id(c);
    assert_int_equal(vfu_client_send_raw(c, &m, sizeof(m), NULL, 0), 0);
    errno = 0;
    assert_int_equal(vfu_client_recv_raw(c, &h, NULL, &size, NULL, NULL, 200), -1);
    assert_int_equal(errno, ETIMEDOUT);
    assert_int_equal(__atomic_load_n(&dev->reset_calls, __ATOMIC_SEQ_CST), 1);
    assert_int_equal(harness_server_exec(srv, complete_quiesce, &rc), 0);
    assert_int_equal(rc, 0);
    assert_int_equal(vfu_client_recv_raw(c, &h, NULL, &size, NULL, NULL,
                                         WAIT_MS), 0);
    assert_int_equal(h.msg_id, m.h.msg_id);
    assert_false(h.flags & VFIO_USER_F_ERROR);
    assert_int_equal(__atomic_load_n(&dev->reset_calls, __ATOMIC_SEQ_CST), 2);
    assert_int_equal(__atomic_load_n(&dev->quiesce_calls_at_reset,
                                     __ATOMIC_SEQ_CST), 2);

    vfu_client_close(c);
    assert_int_equal(harness_server_stop(srv), 0);
    harness_dev_fini(dev);
    free(dev);
}

static void
test_reconnect_keeps_state(void **state)
{
    struct harness_fixture *f = *state;
    uint32_t v = 0xcafef00d, r = 0;

    assert_int_equal(vfu_client_region_write(f->c, 0, 0x80, &v, 4), 0);
    uint16_t cmd = 0x0002;
    assert_int_equal(vfu_client_region_write(f->c, VFU_PCI_DEV_CFG_REGION_IDX,
                                             4, &cmd, 2), 0);
    vfu_client_close(f->c);
    f->c = harness_connect(f->srv);
    assert_int_equal(vfu_client_region_read(f->c, 0, 0x80, &r, 4), 0);
    assert_int_equal(r, v);
    cmd = 0;
    assert_int_equal(vfu_client_region_read(f->c, VFU_PCI_DEV_CFG_REGION_IDX,
                                            4, &cmd, 2), 0);
    assert_int_equal(cmd & 0x2, 0x2);
    /* The lost connection was reported to the device. */
    assert_int_equal(__atomic_load_n(&f->dev.last_reset_type, __ATOMIC_SEQ_CST),
                     VFU_RESET_LOST_CONN);
}

/* ---- IO_FDS: a device with ioeventfds on BAR0: two share an eventfd,
 * one has none ---- */

struct iofd_dev {
    struct harness_dev dev;
    int efd;
};

static int
iofd_setup(vfu_ctx_t *ctx, void *arg)
{
    struct iofd_dev *d = arg;

    if (harness_dev_setup(ctx, &d->dev) < 0) {
        return -1;
    }
    if (vfu_create_ioeventfd(ctx, 0, d->efd, 0x100, 4, 0, 0, -1, 0) < 0 ||
        vfu_create_ioeventfd(ctx, 0, -1, 0x180, 4, 0, 0, -1, 0) < 0) {
        return -1;
    }
    return vfu_create_ioeventfd(ctx, 0, d->efd, 0x200, 8, 0, 0, -1, 0);
}

static void
test_io_fds(void **state)
{
    struct iofd_dev d;
    struct harness_server *s;
    vfu_client_t *c;
    char buf[256];
    struct vfio_user_region_io_fds_reply *rep = (void *)buf;
    size_t size = sizeof(buf);
    int fds[4];
    uint32_t nr = 4;

    assert_int_equal(harness_dev_init(&d.dev), 0);
    d.efd = harness_eventfd();
    s = harness_server_start(iofd_setup, &d);
    assert_non_null(s);
    c = harness_connect(s);
    assert_int_equal(vfu_client_get_region_io_fds(c, 0, rep, &size, fds, &nr), 0);
    assert_int_equal(rep->count, 3);
    /* The shared eventfd travels once; the one without an fd has none. */
    assert_int_equal(nr, 1);
    assert_int_equal(size, sizeof(*rep) + 3 * sizeof(rep->sub_regions[0]));
    struct vfio_user_sub_region_ioeventfd *e[3];
    for (int i = 0; i < 3; i++) {
        e[i] = &rep->sub_regions[i].ioeventfd;
        assert_int_equal(e[i]->type, VFIO_USER_IO_FD_TYPE_IOEVENTFD);
    }
    /* newest first */
    assert_int_equal(e[0]->gpa_offset, 0x200);
    assert_int_equal(e[0]->size, 8);
    assert_int_equal(e[1]->gpa_offset, 0x180);
    assert_int_equal(e[1]->fd_index, UINT32_MAX);
    assert_int_equal(e[2]->gpa_offset, 0x100);
    assert_int_equal(e[2]->size, 4);
    assert_int_equal(e[0]->fd_index, 0);
    assert_int_equal(e[2]->fd_index, 0);
    /* The fd we got is the device's eventfd. */
    uint64_t one = 1;
    assert_int_equal(write(fds[e[2]->fd_index], &one, 8), 8);
    assert_int_equal(harness_eventfd_wait(d.efd, WAIT_MS), 1);
    close(fds[0]);

    /* argsz too small for the array: the needed size comes back. */
    size = sizeof(*rep);
    nr = 4;
    assert_int_equal(vfu_client_get_region_io_fds(c, 0, rep, &size, fds, &nr), 0);
    assert_true(rep->argsz > sizeof(*rep));
    for (uint32_t i = 0; i < nr; i++) {
        close(fds[i]);
    }
    /* A region without ioeventfds has none; a bad index is refused. */
    size = sizeof(buf);
    nr = 4;
    assert_int_equal(vfu_client_get_region_io_fds(c, 2, rep, &size, fds, &nr), 0);
    assert_int_equal(rep->count, 0);
    assert_int_equal(nr, 0);
    size = sizeof(buf);
    nr = 4;
    errno = 0;
    assert_int_equal(vfu_client_get_region_io_fds(c, 99, rep, &size, fds, &nr), -1);
    assert_int_equal(errno, EINVAL);
    /* BAR3 was never set up: there is no region to ask about. */
    size = sizeof(buf);
    nr = 4;
    errno = 0;
    assert_int_equal(vfu_client_get_region_io_fds(c, VFU_PCI_DEV_BAR3_REGION_IDX,
                                                  rep, &size, fds, &nr), -1);
    assert_int_equal(errno, EINVAL);

    vfu_client_close(c);
    assert_int_equal(harness_server_stop(s), 0);
    close(d.efd);
    harness_dev_fini(&d.dev);
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, harness_fixture_setup, \
                                              harness_fixture_teardown)
    const struct CMUnitTest tests[] = {
        T(test_bar_rw),
        T(test_bar_large),
        T(test_bar_out_of_range),
        T(test_bar_zero_count),
        T(test_config_space),
        T(test_posted_write),
        T(test_pipelining),
        T(test_write_multi),
        T(test_threads),
        T(test_reset),
        T(test_quiesce_async),
        T(test_quiesce_async_error),
        T(test_quiesce_lost_client),
        cmocka_unit_test(test_flr_quiesces),
        T(test_reconnect_keeps_state),
        cmocka_unit_test(test_io_fds),
        cmocka_unit_test(test_read_unfilled_is_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
