/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * DMA_READ/DMA_WRITE with a client in each of the two layouts in use: the
 * spec's (8-byte count, writes echoed) and QEMU 10.2's (4-byte count, data
 * from byte 12, empty write replies). The test plays the client by hand on
 * a socket pair while a device thread calls vfu_sgl_read()/write(); the
 * bytes must arrive right either way, and a client in the spec's layout
 * must not pay for the guessing (one message a piece).
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE     /* pthread_tryjoin_np */
#endif
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
#include <unistd.h>

#include <cmocka.h>

#include "libvfio-user.h"
#include "private.h"
#include "harness.h"

#define IOVA 0x10000u
#define N    256u

struct fx {
    char dir[64], path[96];
    vfu_ctx_t *ctx;
    int fd;                 /* the client's end */
    uint64_t sg[8];         /* one dma_sg_t (opaque, 8-aligned) */
    char mem[2 * 4096];     /* the client's memory behind IOVA */
    int qemu;               /* answer in QEMU 10.2's layout */
    int requests;           /* DMA requests seen */
};

struct hdr {
    uint16_t id, cmd;
    uint32_t size, flags, err;
};

static void
xread(int fd, void *buf, size_t len)
{
    assert_int_equal(harness_raw_read(fd, buf, len, 5000), 0);
}

/* Send a command, let the server handle it, read its reply. */
static void
command(struct fx *f, uint16_t cmd, const void *payload, size_t len)
{
    struct hdr h;
    char rest[4096];

    harness_raw_send(f->fd, 7, cmd, VFIO_USER_F_TYPE_COMMAND, payload, len,
                     NULL, 0);
    assert_true(vfu_run_ctx(f->ctx) >= 0);
    xread(f->fd, &h, sizeof(h));
    assert_int_equal(h.err, 0);
    assert_true(h.size - sizeof(h) <= sizeof(rest));
    xread(f->fd, rest, h.size - sizeof(h));
}

static int
setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    int sv[2];
    struct { uint16_t major, minor; } v = { 0, 0 };
    struct vfio_user_dma_map map = {
        .argsz = sizeof(map),
        .flags = VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_WRITE,
        .addr = IOVA, .size = 0x10000,
    };

    snprintf(f->dir, sizeof(f->dir), "/tmp/vfu-layout-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/s", f->dir);
    f->ctx = vfu_create_ctx(VFU_TRANS_SOCK, f->path, LIBVFIO_USER_FLAG_ATTACH_NB,
                            NULL, VFU_DEV_TYPE_PCI);
    assert_non_null(f->ctx);
    assert_int_equal(vfu_pci_init(f->ctx, VFU_PCI_TYPE_CONVENTIONAL, 0, 0), 0);
    assert_int_equal(vfu_setup_device_dma(f->ctx, 0, NULL, NULL), 0);
    assert_int_equal(vfu_realize_ctx(f->ctx), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(vfu_attach_fd(f->ctx, sv[0]), 0);
    f->fd = sv[1];
    command(f, VFIO_USER_VERSION, &v, sizeof(v));
    command(f, VFIO_USER_DMA_MAP, &map, sizeof(map));      /* no fd */
    assert_int_equal(dma_sg_size() <= sizeof(f->sg), 1);
    assert_int_equal(vfu_addr_to_sgl(f->ctx, (vfu_dma_addr_t)(uintptr_t)IOVA, N,
                                     (dma_sg_t *)f->sg, 1,
                                     PROT_READ | PROT_WRITE), 1);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;

    close(f->fd);
    vfu_destroy_ctx(f->ctx);
    rmdir(f->dir);
    free(f);
    return 0;
}

/*
 * Serve DMA requests as the client until the device thread is done:
 * QEMU 10.2's way or the spec's, into f->mem.
 */
static void
serve(struct fx *f, pthread_t t)
{
    for (;;) {
        struct hdr h;
        char p[16 + N + 4], rep[16 + N + 4] = { 0 };
        struct pollfd pf = { .fd = f->fd, .events = POLLIN };

        if (poll(&pf, 1, 200) == 0) {
            if (pthread_tryjoin_np(t, NULL) == 0) {
                return;
            }
            continue;
        }
        xread(f->fd, &h, sizeof(h));
        assert_true(h.size - sizeof(h) <= sizeof(p));
        xread(f->fd, p, h.size - sizeof(h));
        f->requests++;
        uint64_t addr;
        uint32_t count;
        memcpy(&addr, p, 8);
        memcpy(&count, p + 8, 4);       /* both layouts: the low half */
        assert_true(addr >= IOVA && addr - IOVA + count <= sizeof(f->mem));
        assert_true(count <= N);
        char *at = f->mem + (addr - IOVA);
        if (h.cmd == VFIO_USER_DMA_WRITE) {
            /* QEMU 10.2 takes the data at byte 12, the spec at 16. */
            memcpy(at, p + (f->qemu ? 12 : 16), count);
            harness_raw_send(f->fd, h.id, h.cmd, VFIO_USER_F_TYPE_REPLY, p,
                             f->qemu ? 0 : 16, NULL, 0);
        } else {
            assert_int_equal(h.cmd, VFIO_USER_DMA_READ);
            memcpy(rep, p, 16);
            if (f->qemu) {
                memset(rep + 12, 0, 4);
                memcpy(rep + 12, at, count);    /* and 4 bytes of padding */
            } else {
                memcpy(rep + 16, at, count);
            }
            harness_raw_send(f->fd, h.id, h.cmd, VFIO_USER_F_TYPE_REPLY, rep,
                             16 + count, NULL, 0);
        }
    }
}

struct op {
    struct fx *f;
    bool write;
    char data[N];
    int rc;
};

static void *
device(void *arg)
{
    struct op *o = arg;

    o->rc = o->write ? vfu_sgl_write(o->f->ctx, (dma_sg_t *)o->f->sg, 1, o->data, 0)
                     : vfu_sgl_read(o->f->ctx, (dma_sg_t *)o->f->sg, 1, o->data, 0);
    return NULL;
}

static void
run(struct fx *f, struct op *o)
{
    pthread_t t;

    o->f = f;
    assert_int_equal(pthread_create(&t, NULL, device, o), 0);
    serve(f, t);
    assert_int_equal(o->rc, 0);
}

static void
pattern(char *p, int seed)
{
    for (unsigned i = 0; i < N; i++) {
        p[i] = (char)(i * 7 + seed + 1);
    }
}

/* QEMU 10.2, a write first: sent again in its layout once its reply shows. */
static void
test_qemu_write_first(void **state)
{
    struct fx *f = *state;
    struct op w = { .write = true }, r = { .write = false };

    f->qemu = 1;
    pattern(w.data, 1);
    run(f, &w);
    assert_memory_equal(f->mem, w.data, N);
    assert_int_equal(f->requests, 2);
    pattern(f->mem, 2);
    run(f, &r);
    assert_memory_equal(r.data, f->mem, N);
    assert_int_equal(f->requests, 3);
    pattern(w.data, 3);
    run(f, &w);                         /* now one message */
    assert_memory_equal(f->mem, w.data, N);
    assert_int_equal(f->requests, 4);
}

/* QEMU 10.2, a read first: its reply gives it away (bytes 12-15). */
static void
test_qemu_read_first(void **state)
{
    struct fx *f = *state;
    struct op w = { .write = true }, r = { .write = false };

    f->qemu = 1;
    pattern(f->mem, 4);
    run(f, &r);
    assert_memory_equal(r.data, f->mem, N);
    assert_int_equal(f->requests, 1);
    pattern(w.data, 5);
    run(f, &w);
    assert_memory_equal(f->mem, w.data, N);
    assert_int_equal(f->requests, 2);
}

/*
 * Memory whose first and last 4 bytes are zero reads the same in both
 * layouts' headers: it is read again 4 bytes at a time, which both layouts
 * answer alike, until a byte tells them apart.
 */
static void
test_ambiguous_read(void **state)
{
    struct fx *f = *state;
    struct op r = { .write = false };

    for (int qemu = 0; qemu < 2; qemu++) {
        f->qemu = qemu;
        f->requests = 0;
        f->ctx->dma_msg_layout = 0;
        memset(f->mem, 0, N);
        f->mem[9] = 0x5a;                   /* the 3rd piece of 4 tells */
        f->mem[N - 9] = (char)0xa5;
        run(f, &r);
        assert_memory_equal(r.data, f->mem, N);
        assert_int_equal(f->requests, 1 + 3 + 1);
        /* All zero: nothing tells, the answer is right anyway. */
        f->requests = 0;
        f->ctx->dma_msg_layout = 0;
        memset(f->mem, 0, N);
        memset(r.data, 0xff, N);
        run(f, &r);
        assert_memory_equal(r.data, f->mem, N);
        assert_int_equal(f->requests, 1 + N / 4);
    }
}

/*
 * Across a page boundary: a message a page for QEMU 10.2 (it aborts on
 * some big ones), one message for a client known to follow the spec.
 */
static void
test_qemu_one_page_a_message(void **state)
{
    struct fx *f = *state;
    struct op r = { .write = false }, w = { .write = true };
    const uint64_t at = IOVA + 4096 - N / 2;

    assert_int_equal(vfu_addr_to_sgl(f->ctx, (vfu_dma_addr_t)(uintptr_t)at, N,
                                     (dma_sg_t *)f->sg, 1,
                                     PROT_READ | PROT_WRITE), 1);
    for (int qemu = 1; qemu >= 0; qemu--) {
        f->qemu = qemu;
        f->ctx->dma_msg_layout = qemu ? 2 : 1;  /* learnt (LAYOUT_*) */
        f->requests = 0;
        pattern(f->mem + (at - IOVA), qemu);
        run(f, &r);
        assert_memory_equal(r.data, f->mem + (at - IOVA), N);
        pattern(w.data, qemu + 2);
        run(f, &w);
        assert_memory_equal(f->mem + (at - IOVA), w.data, N);
        assert_int_equal(f->requests, qemu ? 4 : 2);
    }
}

/* A client in the spec's layout: one message a piece, from the start. */
static void
test_spec_client(void **state)
{
    struct fx *f = *state;
    struct op w = { .write = true }, r = { .write = false };

    pattern(w.data, 6);
    run(f, &w);
    assert_memory_equal(f->mem, w.data, N);
    pattern(f->mem, 7);
    run(f, &r);
    assert_memory_equal(r.data, f->mem, N);
    assert_int_equal(f->requests, 2);
    /* A read first, of memory whose last bytes are not zero. */
    f->ctx->dma_msg_layout = 0;
    pattern(f->mem, 8);
    run(f, &r);
    assert_memory_equal(r.data, f->mem, N);
    assert_int_equal(f->requests, 3);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_qemu_write_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_qemu_read_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ambiguous_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spec_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_qemu_one_page_a_message, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
