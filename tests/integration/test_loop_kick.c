/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * A non-blocking server whose own thread does message-based DMA outside
 * vfu_run_ctx reads the client's next request into its buffer while it
 * waits for the DMA reply. That request must still wake the poll fd;
 * otherwise it waits for whatever the client sends next.
 */

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "libvfio-user.h"
#include "vfu-client.h"
#include "vfu.h"

#define IOVA 0x100000
#define LEN 4096

struct client_side {
    const char *path;
    char guest[LEN];
    vfu_client_t *c;
    int phase;              /* 1: mapped; 10: go on; 2: read answered */
    int rc, err;
    uint32_t value;
    pthread_mutex_t lock;
    pthread_cond_t cond;
};

static ssize_t
bar0(vfu_ctx_t *ctx, char *buf, size_t count, loff_t off, bool is_write)
{
    if (!is_write) {
        memset(buf, 0xab, count);
    }
    return (ssize_t)count;
}

static void
set_phase(struct client_side *cs, int phase)
{
    pthread_mutex_lock(&cs->lock);
    cs->phase = phase;
    pthread_cond_broadcast(&cs->cond);
    pthread_mutex_unlock(&cs->lock);
}

static void *
client_main(void *arg)
{
    struct client_side *cs = arg;
    struct vfu_client_caps caps;

    /* No cmocka asserts here: they may only fail on the test's thread. */
    while ((cs->c = vfu_client_connect(cs->path)) == NULL) {
        usleep(10000);
    }
    vfu_client_default_caps(&caps);
    if (vfu_client_negotiate(cs->c, &caps, NULL) < 0) {
        abort();
    }
    memset(cs->guest, 0x5a, sizeof(cs->guest));
    /* fd-less: the server reaches this memory with DMA_READ/WRITE */
    if (vfu_client_dma_map(cs->c, IOVA, LEN,
                           VFIO_USER_F_DMA_REGION_READ |
                           VFIO_USER_F_DMA_REGION_WRITE, -1, 0, cs->guest) < 0) {
        abort();
    }
    set_phase(cs, 1);
    pthread_mutex_lock(&cs->lock);
    while (cs->phase != 10) {     /* the server stopped running its loop */
        pthread_cond_wait(&cs->cond, &cs->lock);
    }
    pthread_mutex_unlock(&cs->lock);
    /* Served DMA_READs while waiting for this reply. */
    cs->rc = vfu_client_region_read(cs->c, 0, 0, &cs->value, 4);
    cs->err = errno;
    set_phase(cs, 2);
    return NULL;
}

/*
 * A non-blocking device with BAR0 served by bar0_cb and DMA, on a socket
 * in a new directory made from dir (a mkdtemp template).
 */
static vfu_ctx_t *
device_start(char *dir, char *sock, size_t sock_size,
             vfu_region_access_cb_t *bar0_cb)
{
    vfu_ctx_t *ctx;

    assert_non_null(mkdtemp(dir));
    snprintf(sock, sock_size, "%s/s", dir);
    ctx = vfu_create_ctx(VFU_TRANS_SOCK, sock, LIBVFIO_USER_FLAG_ATTACH_NB,
                         NULL, VFU_DEV_TYPE_PCI);
    assert_non_null(ctx);
    assert_int_equal(vfu_pci_init(ctx, VFU_PCI_TYPE_CONVENTIONAL, 0, 0), 0);
    assert_int_equal(vfu_setup_region(ctx, 0, 4096, bar0_cb,
                                      VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM,
                                      NULL, 0, -1, 0), 0);
    assert_int_equal(vfu_setup_device_dma(ctx, 0, NULL, NULL), 0);
    assert_int_equal(vfu_realize_ctx(ctx), 0);
    return ctx;
}

/* Attach the client once it connects. */
static void
attach(vfu_ctx_t *ctx)
{
    struct pollfd p = { .fd = vfu_get_poll_fd(ctx), .events = POLLIN };

    while (vfu_attach_ctx(ctx) < 0) {
        assert_int_equal(errno, EAGAIN);
        poll(&p, 1, 100);
    }
}

static void
test_request_read_by_device_thread_wakes_poll(void **state)
{
    char path[] = "/tmp/vfu-kick-XXXXXX";
    struct client_side cs = { .lock = PTHREAD_MUTEX_INITIALIZER,
                              .cond = PTHREAD_COND_INITIALIZER };
    char sock[64];
    pthread_t t;
    vfu_ctx_t *ctx;

    ctx = device_start(path, sock, sizeof(sock), bar0);
    cs.path = sock;
    pthread_create(&t, NULL, client_main, &cs);
    struct pollfd p = { .fd = vfu_get_poll_fd(ctx), .events = POLLIN };
    attach(ctx);
    p.fd = vfu_get_poll_fd(ctx);
    for (;;) {   /* VERSION and DMA_MAP */
        pthread_mutex_lock(&cs.lock);
        int phase = cs.phase;
        pthread_mutex_unlock(&cs.lock);
        if (phase >= 1) {
            break;
        }
        poll(&p, 1, 100);
        assert_true(vfu_run_ctx(ctx) >= 0 || errno == EAGAIN);
    }
    set_phase(&cs, 10);
    /* Let the REGION_READ reach the socket before we read for our reply. */
    usleep(200 * 1000);

    dma_sg_t *sg = calloc(1, dma_sg_size());
    char got[64];
    assert_int_equal(vfu_addr_to_sgl(ctx, (vfu_dma_addr_t)IOVA, sizeof(got),
                                     sg, 1, PROT_READ), 1);
    int rrc = vfu_sgl_read(ctx, sg, 1, got, VFU_SGL_DIRECT_ACCESS);
    if (rrc < 0) {
        fprintf(stderr, "vfu_sgl_read: %s\n", strerror(errno));
    }
    assert_int_equal(rrc, 0);
    assert_int_equal((unsigned char)got[0], 0x5a);

    /* The REGION_READ is in our buffer now: the poll fd must say so. */
    assert_int_equal(poll(&p, 1, 1000), 1);
    assert_true(vfu_run_ctx(ctx) >= 1);
    pthread_join(t, NULL);
    if (cs.rc < 0) {
        fprintf(stderr, "region read: %s\n", strerror(cs.err));
    }
    assert_int_equal(cs.rc, 0);
    assert_int_equal(cs.phase, 2);
    assert_int_equal(cs.value, 0xabababab);

    vfu_client_close(cs.c);
    free(sg);
    vfu_destroy_ctx(ctx);
    rmdir(path);
}

/*
 * The connection joins the poll set only once someone asks for the poll
 * fd (a blocking loop never needs it). Asking after the client is already
 * attached, with its request already waiting, must still show it.
 */
/* A VERSION with no capabilities, sent raw: its reply is not read. */
static void
send_hello(vfu_client_t *c)
{
    struct {
        struct vfio_user_header h;
        struct vfio_user_version v;
    } __attribute__((packed)) m = {
        .h = { .cmd = VFIO_USER_VERSION, .msg_size = sizeof(m) },
    };

    assert_int_equal(vfu_client_send_raw(c, &m, sizeof(m), NULL, 0), 0);
}

static void
test_poll_fd_asked_after_attach(void **state)
{
    char path[] = "/tmp/vfu-kick-XXXXXX";
    char sock[64];
    struct vfio_user_header h = { .cmd = VFIO_USER_VERSION, .msg_size = 16 };
    vfu_client_t *c;
    vfu_ctx_t *ctx;

    assert_non_null(mkdtemp(path));
    snprintf(sock, sizeof(sock), "%s/s", path);
    ctx = vfu_create_ctx(VFU_TRANS_SOCK, sock, LIBVFIO_USER_FLAG_ATTACH_NB,
                         NULL, VFU_DEV_TYPE_PCI);
    assert_non_null(ctx);
    assert_int_equal(vfu_pci_init(ctx, VFU_PCI_TYPE_CONVENTIONAL, 0, 0), 0);
    assert_int_equal(vfu_realize_ctx(ctx), 0);
    c = vfu_client_connect(sock);      /* queued in the listen backlog */
    assert_non_null(c);
    send_hello(c);
    assert_int_equal(vfu_attach_ctx(ctx), 0);
    assert_int_equal(vfu_client_send_raw(c, &h, sizeof(h), NULL, 0), 0);

    struct pollfd p = { .fd = vfu_get_poll_fd(ctx), .events = POLLIN };
    assert_int_equal(poll(&p, 1, 1000), 1);
    /* A second VERSION: answered with an error, client kept. */
    assert_int_equal(vfu_run_ctx(ctx), 1);
    assert_int_equal(poll(&p, 1, 0), 0);

    /* The next client is watched too (the conn fd was swapped out). */
    vfu_client_close(c);
    assert_int_equal(poll(&p, 1, 1000), 1);
    assert_int_equal(vfu_run_ctx(ctx), -1);
    assert_int_equal(errno, ENOTCONN);
    c = vfu_client_connect(sock);
    assert_non_null(c);
    assert_int_equal(poll(&p, 1, 1000), 1);        /* the listen socket */
    /* Accepted, but attached only once its VERSION is in. */
    assert_int_equal(vfu_attach_ctx(ctx), -1);
    assert_int_equal(errno, EAGAIN);
    send_hello(c);
    assert_int_equal(poll(&p, 1, 1000), 1);        /* the connection */
    assert_int_equal(vfu_attach_ctx(ctx), 0);
    assert_int_equal(vfu_client_send_raw(c, &h, sizeof(h), NULL, 0), 0);
    assert_int_equal(poll(&p, 1, 1000), 1);
    assert_int_equal(vfu_run_ctx(ctx), 1);

    vfu_client_close(c);
    vfu_destroy_ctx(ctx);
    rmdir(path);
}

/* ---- a kick set while the client goes ---- */

/* BAR0 of the device below: each read fetches a byte of guest memory with
 * a DMA_READ, as a device doing DMA from a register access would, and is
 * slow about the rest. */
static ssize_t
bar0_dma(vfu_ctx_t *ctx, char *buf, size_t count, loff_t off, bool is_write)
{
    dma_sg_t *sg = calloc(1, dma_sg_size());
    char byte = 0;

    if (!is_write && sg != NULL &&
        vfu_addr_to_sgl(ctx, (vfu_dma_addr_t)IOVA, 1, sg, 1, PROT_READ) == 1) {
        vfu_sgl_read(ctx, sg, 1, &byte, VFU_SGL_DIRECT_ACCESS);
        usleep(200 * 1000);     /* the client hangs up meanwhile */
    }
    free(sg);
    memset(buf, byte, count);
    return (ssize_t)count;
}

/*
 * The client: asks for BAR0, and when the device's DMA_READ comes, first
 * sends a posted write (which the device's thread reads, waiting for its
 * DMA reply, and leaves to the loop with a kick), then the DMA reply, and
 * hangs up without waiting for its register.
 */
static void *
leaving_client_main(void *arg)
{
    struct client_side *cs = arg;
    struct vfu_client_caps caps;
    struct {
        struct vfio_user_header h;
        struct vfio_user_region_access a;
        uint32_t v;
    } __attribute__((packed)) rd = {
        .h = { .cmd = VFIO_USER_REGION_READ, .msg_size = 32 },
        .a = { .region = 0, .count = 4 },
    }, wr = {
        .h = { .cmd = VFIO_USER_REGION_WRITE, .msg_size = sizeof(wr),
               .flags = VFIO_USER_F_NO_REPLY },
        .a = { .region = 0, .count = 4 },
    };
    struct {
        struct vfio_user_header h;
        struct vfio_user_dma_region_access a;
        char byte;
    } __attribute__((packed)) dma_rep;
    struct vfio_user_dma_region_access dma_req;
    struct vfio_user_header h;
    size_t size = sizeof(dma_req);

    /* No cmocka asserts here: they may only fail on the test's thread. */
    while ((cs->c = vfu_client_connect(cs->path)) == NULL) {
        usleep(10000);
    }
    vfu_client_default_caps(&caps);
    if (vfu_client_negotiate(cs->c, &caps, NULL) < 0 ||
        vfu_client_dma_map(cs->c, IOVA, LEN, VFIO_USER_F_DMA_REGION_READ, -1,
                           0, cs->guest) < 0) {
        abort();
    }
    rd.h.msg_id = vfu_client_next_msg_id(cs->c);
    wr.h.msg_id = vfu_client_next_msg_id(cs->c);
    if (vfu_client_send_raw(cs->c, &rd, sizeof(rd.h) + sizeof(rd.a), NULL, 0) < 0 ||
        vfu_client_recv_raw(cs->c, &h, &dma_req, &size, NULL, NULL, 5000) < 0 ||
        h.cmd != VFIO_USER_DMA_READ) {
        abort();
    }
    dma_rep.h = (struct vfio_user_header){
        .msg_id = h.msg_id, .cmd = VFIO_USER_DMA_READ,
        .msg_size = sizeof(dma_rep), .flags = VFIO_USER_F_TYPE_REPLY,
    };
    dma_rep.a = dma_req;
    dma_rep.byte = 0x5a;
    if (vfu_client_send_raw(cs->c, &wr, sizeof(wr), NULL, 0) < 0) {
        abort();
    }
    usleep(50 * 1000);      /* the posted write arrives on its own */
    if (vfu_client_send_raw(cs->c, &dma_rep, sizeof(dma_rep), NULL, 0) < 0) {
        abort();
    }
    vfu_client_close(cs->c);
    cs->c = NULL;
    set_phase(cs, 2);
    return NULL;
}

/*
 * The device's thread (here: the loop's own, inside a callback) reads a
 * request for the loop and kicks it; the client is gone before the loop
 * looks. The kick must go with the client: a poll waiting for the next
 * client must sleep, not wake at once again and again.
 */
static void
test_kick_of_lost_client_is_cleared(void **state)
{
    char path[] = "/tmp/vfu-kick-XXXXXX";
    struct client_side cs = { .lock = PTHREAD_MUTEX_INITIALIZER,
                              .cond = PTHREAD_COND_INITIALIZER };
    char sock[64];
    pthread_t t;
    vfu_ctx_t *ctx;
    int lost = 0;

    ctx = device_start(path, sock, sizeof(sock), bar0_dma);
    cs.path = sock;
    pthread_create(&t, NULL, leaving_client_main, &cs);
    struct pollfd p = { .fd = vfu_get_poll_fd(ctx), .events = POLLIN };
    attach(ctx);
    for (int i = 0; i < 200 && !lost; i++) {
        poll(&p, 1, 100);
        if (vfu_run_ctx(ctx) < 0) {
            assert_true(errno == EAGAIN || errno == ENOTCONN);
            lost = errno == ENOTCONN;
        }
    }
    assert_true(lost);
    pthread_join(t, NULL);
    assert_int_equal(cs.phase, 2);

    /* No client now, none connecting: nothing to wake up for. */
    assert_int_equal(poll(&p, 1, 200), 0);
    int fds[2];
    assert_int_equal(vfu_get_poll_fds(ctx, fds), 0);
    struct pollfd q[2] = { { .fd = fds[0], .events = POLLIN },
                           { .fd = fds[1], .events = POLLIN } };
    assert_int_equal(poll(q, 2, 0), 0);

    vfu_destroy_ctx(ctx);
    rmdir(path);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_read_by_device_thread_wakes_poll),
        cmocka_unit_test(test_poll_fd_asked_after_attach),
        cmocka_unit_test(test_kick_of_lost_client_is_cleared),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
