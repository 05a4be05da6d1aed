/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/* DMA_MAP/UNMAP, and DMA_READ/WRITE served by the client library. */

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define RW (VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_WRITE)

static unsigned
load(unsigned *p)
{
    return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}

static void
test_map_unmap(void **state)
{
    struct harness_fixture *f = *state;
    int mfd = harness_memfd(0x10000);
    static uint8_t local[0x2000];

    assert_int_equal(vfu_client_dma_map(f->c, 0x100000, 0x10000, RW, mfd, 0,
                                        NULL), 0);
    assert_int_equal(load(&f->dev.dma_registers), 1);
    assert_int_equal(vfu_client_dma_map(f->c, 0x200000, sizeof(local), RW, -1,
                                        0, local), 0);
    assert_int_equal(load(&f->dev.dma_registers), 2);
    /* Overlap. */
    errno = 0;
    assert_int_equal(vfu_client_dma_map(f->c, 0x108000, 0x1000, RW, -1, 0,
                                        NULL), -1);
    assert_int_equal(errno, EEXIST);
    /* Unmap must match a mapping exactly. */
    errno = 0;
    assert_int_equal(vfu_client_dma_unmap(f->c, 0x100000, 0x1000, 0), -1);
    assert_int_equal(vfu_client_dma_unmap(f->c, 0x100000, 0x10000, 0), 0);
    assert_int_equal(load(&f->dev.dma_unregisters), 1);
    assert_int_equal(vfu_client_dma_unmap(f->c, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL), 0);
    assert_int_equal(load(&f->dev.dma_unregisters), 2);
    close(mfd);
}

struct dev_thread {
    vfu_ctx_t *ctx;
    uint64_t iova;
    uint8_t data[64];
    int rc_write, rc_read;
    bool done;
};

/* A device thread moving data through DMA_WRITE then DMA_READ. */
static void *
dma_worker(void *opaque)
{
    struct dev_thread *t = opaque;
    dma_sg_t *sg = calloc(1, dma_sg_size());

    if (vfu_addr_to_sgl(t->ctx, (vfu_dma_addr_t)(uintptr_t)t->iova,
                        sizeof(t->data), sg, 1, PROT_READ | PROT_WRITE) != 1) {
        t->rc_write = t->rc_read = -2;
    } else {
        t->rc_write = vfu_sgl_write(t->ctx, sg, 1, t->data, VFU_SGL_DIRECT_ACCESS);
        memset(t->data, 0, sizeof(t->data));
        t->rc_read = vfu_sgl_read(t->ctx, sg, 1, t->data, VFU_SGL_DIRECT_ACCESS);
    }
    free(sg);
    __atomic_store_n(&t->done, true, __ATOMIC_SEQ_CST);
    return NULL;
}

static void
test_client_serves_dma(void **state)
{
    struct harness_fixture *f = *state;
    static uint8_t guest[0x4000];
    struct dev_thread t = { .ctx = harness_server_ctx(f->srv),
                            .iova = 0x300000 + 0x100 };
    pthread_t th;

    for (size_t i = 0; i < sizeof(t.data); i++) {
        t.data[i] = (uint8_t)(0xc0 + i);
    }
    assert_int_equal(vfu_client_dma_map(f->c, 0x300000, sizeof(guest), RW, -1,
                                        0, guest), 0);
    assert_int_equal(pthread_create(&th, NULL, dma_worker, &t), 0);
    /* The client answers the server's requests while idle. */
    for (int i = 0; i < 500 && !__atomic_load_n(&t.done, __ATOMIC_SEQ_CST); i++) {
        assert_true(vfu_client_poll(f->c, 10) >= 0);
    }
    pthread_join(th, NULL);
    assert_int_equal(t.rc_write, 0);
    assert_int_equal(t.rc_read, 0);
    for (size_t i = 0; i < sizeof(t.data); i++) {
        assert_int_equal(guest[0x100 + i], (uint8_t)(0xc0 + i));
        assert_int_equal(t.data[i], (uint8_t)(0xc0 + i));
    }
    assert_int_equal(vfu_client_dma_unmap(f->c, 0x300000, sizeof(guest), 0), 0);
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, harness_fixture_setup, \
                                              harness_fixture_teardown)
    const struct CMUnitTest tests[] = {
        T(test_map_unmap),
        T(test_client_serves_dma),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
