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

static void
test_request_read_by_device_thread_wakes_poll(void **state)
{
    char path[] = "/tmp/vfu-kick-XXXXXX";
    struct client_side cs = { .lock = PTHREAD_MUTEX_INITIALIZER,
                              .cond = PTHREAD_COND_INITIALIZER };
    char sock[64];
    pthread_t t;
    vfu_ctx_t *ctx;

    assert_non_null(mkdtemp(path));
    snprintf(sock, sizeof(sock), "%s/s", path);
    cs.path = sock;
    ctx = vfu_create_ctx(VFU_TRANS_SOCK, sock, LIBVFIO_USER_FLAG_ATTACH_NB,
                         NULL, VFU_DEV_TYPE_PCI);
    assert_non_null(ctx);
    assert_int_equal(vfu_pci_init(ctx, VFU_PCI_TYPE_CONVENTIONAL, 0, 0), 0);
    assert_int_equal(vfu_setup_region(ctx, 0, 4096, bar0,
                                      VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM,
                                      NULL, 0, -1, 0), 0);
    assert_int_equal(vfu_setup_device_dma(ctx, NULL, NULL), 0);
    assert_int_equal(vfu_realize_ctx(ctx), 0);
    pthread_create(&t, NULL, client_main, &cs);

    struct pollfd p = { .fd = vfu_get_poll_fd(ctx), .events = POLLIN };
    while (vfu_attach_ctx(ctx) < 0) {
        assert_int_equal(errno, EAGAIN);
        poll(&p, 1, 100);
    }
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
    int rrc = vfu_sgl_read(ctx, sg, 1, got);
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
    assert_int_equal(vfu_attach_ctx(ctx), 0);
    assert_int_equal(vfu_client_send_raw(c, &h, sizeof(h), NULL, 0), 0);

    struct pollfd p = { .fd = vfu_get_poll_fd(ctx), .events = POLLIN };
    assert_int_equal(poll(&p, 1, 1000), 1);
    /* A VERSION without its JSON: answered with an error, client kept. */
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
    assert_int_equal(vfu_attach_ctx(ctx), 0);
    assert_int_equal(vfu_client_send_raw(c, &h, sizeof(h), NULL, 0), 0);
    assert_int_equal(poll(&p, 1, 1000), 1);
    assert_int_equal(vfu_run_ctx(ctx), 1);

    vfu_client_close(c);
    vfu_destroy_ctx(ctx);
    rmdir(path);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_read_by_device_thread_wakes_poll),
        cmocka_unit_test(test_poll_fd_asked_after_attach),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
