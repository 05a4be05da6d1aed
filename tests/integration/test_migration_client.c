/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * The client migration helpers (vfu-client-migration.h) between two real
 * servers: pre-copy rounds with dirty-page reports of memfd-backed client
 * memory that the source device writes, stop-and-copy, resume, and a
 * destination that refuses a corrupt stream.
 */
#include <errno.h>
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
#include "libvfio-user.h"
#include "vfu-client-migration.h"
#include "vfu-client.h"

#define MEM_IOVA  0x10000ull
#define MEM_SIZE  0x10000ull
#define PG        4096ull
#define DIRTY_PG  3ull

struct mdev {
    struct harness_dev hdev;    /* first: the harness casts the private ptr */
    vfu_migr_state_t state;
    uint64_t pre_len, total_len, rd_off;
    uint64_t expect_len, wr_off;
    int write_errno;            /* write_data fails with this, if set */
    unsigned dirtied;
};

static uint8_t
stream_byte(uint64_t i)
{
    return (uint8_t)(i * 131u + (i >> 9));
}

/* The source device writes one page of client memory while running. */
static void
touch_client_memory(vfu_ctx_t *ctx, struct mdev *d)
{
    uint8_t sgbuf[256];
    dma_sg_t *sg = (dma_sg_t *)sgbuf;
    struct iovec iov;

    assert_true(dma_sg_size() <= sizeof(sgbuf));
    if (vfu_addr_to_sgl(ctx, (vfu_dma_addr_t)(uintptr_t)(MEM_IOVA +
                        DIRTY_PG * PG), 8, sg, 1, PROT_READ | PROT_WRITE) != 1 ||
        vfu_sgl_get(ctx, sg, &iov, 1, 0) != 0) {
        return;     /* no memory mapped in this test */
    }
    memset(iov.iov_base, 0xa5, 8);
    vfu_sgl_put(ctx, sg, &iov, 1);
    d->dirtied++;
}

static int
m_transition(vfu_ctx_t *ctx, vfu_migr_state_t s)
{
    struct mdev *d = vfu_get_private(ctx);

    if (s == VFU_MIGR_STATE_PRE_COPY ||
        (s == VFU_MIGR_STATE_STOP_AND_COPY &&
         d->state != VFU_MIGR_STATE_PRE_COPY)) {
        d->rd_off = 0;
    }
    if (s == VFU_MIGR_STATE_RESUME) {
        d->wr_off = 0;
    }
    if (d->state == VFU_MIGR_STATE_RESUME && s == VFU_MIGR_STATE_STOP &&
        d->wr_off != d->expect_len) {
        errno = EINVAL;
        return -1;
    }
    d->state = s;
    return 0;
}

static ssize_t
m_read(vfu_ctx_t *ctx, void *buf, uint64_t count)
{
    struct mdev *d = vfu_get_private(ctx);
    uint64_t end = d->state == VFU_MIGR_STATE_PRE_COPY ? d->pre_len
                                                      : d->total_len;
    uint64_t n = d->rd_off < end ? end - d->rd_off : 0;

    if (d->state == VFU_MIGR_STATE_PRE_COPY) {
        touch_client_memory(ctx, d);
    }
    if (n > count) {
        n = count;
    }
    for (uint64_t i = 0; i < n; i++) {
        ((uint8_t *)buf)[i] = stream_byte(d->rd_off + i);
    }
    d->rd_off += n;
    return (ssize_t)n;
}

static ssize_t
m_write(vfu_ctx_t *ctx, void *buf, uint64_t count)
{
    struct mdev *d = vfu_get_private(ctx);

    if (d->write_errno != 0) {
        errno = d->write_errno;
        return -1;
    }
    for (uint64_t i = 0; i < count; i++) {
        if (((uint8_t *)buf)[i] != stream_byte(d->wr_off + i)) {
            errno = EILSEQ;
            return -1;
        }
    }
    d->wr_off += count;
    return (ssize_t)count;
}

static int
m_setup(vfu_ctx_t *ctx, void *arg)
{
    static const vfu_migration_callbacks_t cbs = {
        .version = VFU_MIGR_CALLBACKS_VERS,
        .transition = m_transition,
        .read_data = m_read,
        .write_data = m_write,
    };
    struct mdev *d = arg;

    d->state = VFU_MIGR_STATE_RUNNING;
    if (harness_dev_setup(ctx, &d->hdev) < 0) {
        return -1;
    }
    return vfu_setup_device_migration_callbacks(ctx, &cbs);
}

struct dirty_seen {
    unsigned calls;
    unsigned with_page;
};

static int
on_dirty(void *opaque, uint64_t iova, uint64_t length, uint64_t page_size,
         const uint64_t *bitmap)
{
    struct dirty_seen *ds = opaque;

    assert_int_equal(iova, MEM_IOVA);
    assert_int_equal(length, MEM_SIZE);
    assert_int_equal(page_size, PG);
    ds->calls++;
    if (bitmap[0] & (1ull << DIRTY_PG)) {
        ds->with_page++;
    }
    /* No other page was written. */
    assert_int_equal(bitmap[0] & ~(1ull << DIRTY_PG), 0);
    return 0;
}

struct pair {
    struct mdev src_dev, dst_dev;
    struct harness_server *src, *dst;
    vfu_client_t *cs, *cd;
};

static void
pair_start(struct pair *p)
{
    memset(p, 0, sizeof(*p));
    assert_int_equal(harness_dev_init(&p->src_dev.hdev), 0);
    assert_int_equal(harness_dev_init(&p->dst_dev.hdev), 0);
    p->src = harness_server_start(m_setup, &p->src_dev);
    p->dst = harness_server_start(m_setup, &p->dst_dev);
    assert_non_null(p->src);
    assert_non_null(p->dst);
    p->cs = harness_connect(p->src);
    p->cd = harness_connect(p->dst);
}

static void
pair_stop(struct pair *p)
{
    vfu_client_close(p->cs);
    vfu_client_close(p->cd);
    harness_server_stop(p->src);
    harness_server_stop(p->dst);
    harness_dev_fini(&p->src_dev.hdev);
    harness_dev_fini(&p->dst_dev.hdev);
}

static void
test_migrate_with_dirty_logging(void **state)
{
    struct pair p;
    const struct vfio_user_device_feature_dma_logging_range range = {
        .iova = MEM_IOVA, .length = MEM_SIZE,
    };
    struct dirty_seen ds = { 0 };
    struct vfu_client_mig_params params = {
        .max_rounds = 4, .converge_bytes = 1,
        .ranges = &range, .nr_ranges = 1, .page_size = PG,
        .on_dirty = on_dirty, .opaque = &ds,
    };
    struct vfu_client_mig_stats st;
    uint32_t s;
    int fd = harness_memfd(MEM_SIZE);
    void *mem;

    pair_start(&p);
    assert_true(fd >= 0);
    mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    assert_true(mem != MAP_FAILED);
    assert_int_equal(vfu_client_dma_map(p.cs, MEM_IOVA, MEM_SIZE,
                                        VFIO_USER_F_DMA_REGION_READ |
                                        VFIO_USER_F_DMA_REGION_WRITE,
                                        fd, 0, mem), 0);
    p.src_dev.pre_len = (3u << 20) + 5;
    p.src_dev.total_len = (5u << 20) + 3;
    p.dst_dev.expect_len = p.src_dev.total_len;

    assert_int_equal(vfu_client_migrate(p.cs, p.cd, &params, &st), 0);
    assert_int_equal(st.precopy_bytes, p.src_dev.pre_len);
    assert_int_equal(st.stopcopy_bytes,
                     p.src_dev.total_len - p.src_dev.pre_len);
    /* Round 1 moves the pre-copy data, round 2 finds none: converged. */
    assert_int_equal(st.rounds, 2);
    assert_int_equal(p.dst_dev.wr_off, p.src_dev.total_len);
    assert_int_equal(vfu_client_mig_get_state(p.cs, &s), 0);
    assert_int_equal(s, VFIO_USER_DEVICE_STATE_STOP);
    assert_int_equal(vfu_client_mig_get_state(p.cd, &s), 0);
    assert_int_equal(s, VFIO_USER_DEVICE_STATE_RUNNING);
    /* A report per round and one after stopping; the written page shows
     * up while the device wrote it. */
    assert_int_equal(ds.calls, 3);
    assert_true(p.src_dev.dirtied > 0);
    assert_true(ds.with_page >= 1);
    assert_memory_equal((uint8_t *)mem + DIRTY_PG * PG,
                        "\xa5\xa5\xa5\xa5\xa5\xa5\xa5\xa5", 8);

    /* Logging was stopped: a report is refused now. */
    uint64_t bm = 0;
    assert_int_equal(vfu_client_dma_logging_report(p.cs, MEM_IOVA, MEM_SIZE,
                                                   PG, &bm, sizeof(bm)), -1);
    assert_int_equal(vfu_client_mig_set_state(p.cs,
                     VFIO_USER_DEVICE_STATE_RUNNING), 0);
    assert_int_equal(vfu_client_dma_unmap(p.cs, MEM_IOVA, MEM_SIZE, 0), 0);
    munmap(mem, MEM_SIZE);
    close(fd);
    pair_stop(&p);
}

static void
test_migrate_no_precopy_and_errors(void **state)
{
    struct pair p;
    struct vfu_client_mig_stats st;
    uint32_t s;

    pair_start(&p);
    p.src_dev.total_len = 1000;
    p.dst_dev.expect_len = 1000;
    assert_int_equal(vfu_client_migrate(p.cs, p.cd, NULL, &st), 0);
    assert_int_equal(st.rounds, 0);
    assert_int_equal(st.stopcopy_bytes, 1000);

    /* Migrate back (the old destination is now the source) into a device
     * that refuses the data: an error, and both servers keep serving. */
    p.dst_dev.pre_len = 10;
    p.dst_dev.total_len = 20;
    p.src_dev.write_errno = EILSEQ;
    struct vfu_client_mig_params params = { .max_rounds = 2 };
    assert_int_equal(vfu_client_migrate(p.cd, p.cs, &params, &st), -1);
    assert_int_equal(errno, EILSEQ);
    assert_int_equal(st.rounds, 0);
    assert_int_equal(vfu_client_mig_get_state(p.cs, &s), 0);
    assert_int_equal(s, VFIO_USER_DEVICE_STATE_RESUMING);
    assert_int_equal(vfu_client_mig_get_state(p.cd, &s), 0);
    assert_int_equal(s, VFIO_USER_DEVICE_STATE_PRE_COPY);
    /* The usual recovery. */
    assert_int_equal(vfu_client_device_reset(p.cs), 0);
    assert_int_equal(vfu_client_mig_get_state(p.cs, &s), 0);
    assert_int_equal(s, VFIO_USER_DEVICE_STATE_RUNNING);
    assert_int_equal(vfu_client_mig_set_state(p.cd,
                     VFIO_USER_DEVICE_STATE_RUNNING), 0);
    pair_stop(&p);

    /* Bad arguments. */
    errno = 0;
    assert_int_equal(vfu_client_migrate(NULL, NULL, NULL, NULL), -1);
    assert_int_equal(errno, EINVAL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_migrate_with_dirty_logging),
        cmocka_unit_test(test_migrate_no_precopy_and_errors),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
