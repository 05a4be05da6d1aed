/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * Device callbacks that fail: region access, reset, quiesce and migration
 * callbacks returning -1 with each errno a device might use (and with
 * errno left 0), or returning byte counts they should not. The client gets
 * the device's errno (EIO for none), the server never sends more than was
 * asked, and once the device behaves again everything works.
 */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

#define BAR_SIZE 0x1000

/* Shared between the test thread and the server thread: atomics only. */
struct cbdev {
    uint8_t bar[BAR_SIZE];
    uint8_t cfg[4096];          /* config space, all by callback */
    int region_err;         /* -1: behave; else fail with this errno */
    int region_extra;       /* added to the byte count returned */
    int reset_err;
    int quiesce_err;
    int transition_err;
    int read_err;
};

static int
get(int *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static void
set(int *p, int v)
{
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}

/* -1 with the errno the test put in *p for this callback, or 0 (*p < 0). */
static int
outcome(int *p)
{
    int err = get(p);

    if (err >= 0) {
        errno = err;
        return -1;
    }
    return 0;
}

static ssize_t
bar_cb(vfu_ctx_t *ctx, char *buf, size_t count, loff_t off, bool is_write)
{
    struct cbdev *d = vfu_get_private(ctx);

    if (outcome(&d->region_err) < 0) {
        return -1;
    }
    if ((size_t)off > BAR_SIZE || count > BAR_SIZE - (size_t)off) {
        errno = EINVAL;
        return -1;
    }
    if (is_write) {
        memcpy(d->bar + off, buf, count);
    } else {
        memcpy(buf, d->bar + off, count);
    }
    return (ssize_t)count + get(&d->region_extra);
}

static ssize_t
cfg_cb(vfu_ctx_t *ctx, char *buf, size_t count, loff_t off, bool is_write)
{
    struct cbdev *d = vfu_get_private(ctx);

    if ((size_t)off > sizeof(d->cfg) || count > sizeof(d->cfg) - (size_t)off) {
        errno = EINVAL;
        return -1;
    }
    if (is_write) {
        memcpy(d->cfg + off, buf, count);
    } else {
        memcpy(buf, d->cfg + off, count);
    }
    return (ssize_t)count + get(&d->region_extra);
}

static int
reset_cb(vfu_ctx_t *ctx, vfu_reset_type_t type)
{
    struct cbdev *d = vfu_get_private(ctx);

    return outcome(&d->reset_err);
}

static int
quiesce_cb(vfu_ctx_t *ctx)
{
    struct cbdev *d = vfu_get_private(ctx);

    return outcome(&d->quiesce_err);
}

static int
transition_cb(vfu_ctx_t *ctx, vfu_migr_state_t state)
{
    struct cbdev *d = vfu_get_private(ctx);

    return outcome(&d->transition_err);
}

static ssize_t
read_cb(vfu_ctx_t *ctx, void *buf, uint64_t count)
{
    struct cbdev *d = vfu_get_private(ctx);

    if (outcome(&d->read_err) < 0) {
        return -1;
    }
    memset(buf, 0x5a, count);
    return (ssize_t)count;
}

static ssize_t
write_cb(vfu_ctx_t *ctx, void *buf, uint64_t count)
{
    return (ssize_t)count;
}

static const vfu_migration_callbacks_t migr = {
    .version = VFU_MIGR_CALLBACKS_VERS,
    .transition = transition_cb,
    .read_data = read_cb,
    .write_data = write_cb,
};

static void
dma_cb(vfu_ctx_t *ctx, vfu_dma_info_t *info)
{
}

static int
cb_setup(vfu_ctx_t *ctx, void *arg)
{
    vfu_setup_device_quiesce_cb(ctx, quiesce_cb);
    if (vfu_pci_init(ctx, VFU_PCI_TYPE_EXPRESS, PCI_HEADER_TYPE_NORMAL, 0) < 0 ||
        vfu_setup_region(ctx, VFU_PCI_DEV_BAR0_REGION_IDX, BAR_SIZE, bar_cb,
                         VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM, NULL, 0,
                         -1, 0) < 0 ||
        vfu_setup_region(ctx, VFU_PCI_DEV_CFG_REGION_IDX, 4096, cfg_cb,
                         VFU_REGION_FLAG_RW | VFU_REGION_FLAG_ALWAYS_CB, NULL,
                         0, -1, 0) < 0 ||
        vfu_setup_device_reset_cb(ctx, reset_cb) < 0 ||
        vfu_setup_device_dma(ctx, 0, dma_cb, dma_cb) < 0 ||
        vfu_setup_device_migration_callbacks(ctx, &migr) < 0) {
        return -1;
    }
    return 0;
}

struct cfx {
    struct cbdev dev;
    struct harness_server *srv;
    vfu_client_t *c;
};

static void
behave(struct cbdev *d)
{
    set(&d->region_err, -1);
    set(&d->region_extra, 0);
    set(&d->reset_err, -1);
    set(&d->quiesce_err, -1);
    set(&d->transition_err, -1);
    set(&d->read_err, -1);
}

static int
setup(void **state)
{
    struct cfx *f = calloc(1, sizeof(*f));

    if (f == NULL) {
        return -1;
    }
    behave(&f->dev);
    f->srv = harness_server_start(cb_setup, &f->dev);
    if (f->srv == NULL) {
        return -1;
    }
    f->c = harness_connect(f->srv);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct cfx *f = *state;
    int rc;

    vfu_client_close(f->c);
    rc = harness_server_stop(f->srv);
    free(f);
    return rc;
}

static const int errs[] = {
    0, EINVAL, EIO, EFAULT, ENOSPC, EPERM, EACCES, EBUSY, ENOMEM, ENOTSUP,
    EAGAIN, ENOENT, ERANGE, EOVERFLOW, ENODEV, ETIMEDOUT,
};

static int
expect(int err)
{
    return err == 0 ? EIO : err;
}

static void
assert_works(struct cfx *f)
{
    uint32_t v = 0xa5a5a5a5, back = 0;

    assert_int_equal(vfu_client_region_write(f->c, VFU_PCI_DEV_BAR0_REGION_IDX,
                                             0x10, &v, 4), 0);
    assert_int_equal(vfu_client_region_read(f->c, VFU_PCI_DEV_BAR0_REGION_IDX,
                                            0x10, &back, 4), 0);
    assert_int_equal(back, v);
}

/* A read of 16 bytes while the callback adds extra to its byte count. */
static void
check_count(struct cfx *f, uint32_t region, int extra)
{
    char reply[256];
    size_t size = sizeof(reply);
    struct { uint64_t off; uint32_t region, count; } rd = { 0, region, 16 };
    int rc;

    set(&f->dev.region_extra, extra);
    rc = vfu_client_call(f->c, VFIO_USER_REGION_READ, &rd, sizeof(rd), NULL, 0,
                         reply, &size, NULL, NULL);
    if (rc == 0) {
        /* A short read is reported as such, with a matching count. */
        uint32_t count;
        assert_true(size >= sizeof(rd) && size <= sizeof(rd) + 16);
        memcpy(&count, reply + 12, 4);
        assert_int_equal(count, size - sizeof(rd));
    }
    if (extra > 0) {
        assert_int_equal(rc, -1);
        assert_int_equal(errno, EIO);
    }
    set(&f->dev.region_extra, 0);
    assert_works(f);
}

static void
test_region(void **state)
{
    struct cfx *f = *state;
    uint8_t buf[64];

    for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
        set(&f->dev.region_err, errs[i]);
        assert_int_equal(vfu_client_region_read(f->c, 0, 0, buf, 8), -1);
        assert_int_equal(errno, expect(errs[i]));
        assert_int_equal(vfu_client_region_write(f->c, 0, 0, buf, 8), -1);
        assert_int_equal(errno, expect(errs[i]));
        set(&f->dev.region_err, -1);
        assert_works(f);
    }
    /* Claims of more bytes than asked for, or fewer: never more data than
     * asked, never a crash; in a BAR and in config space. */
    for (int extra = -8; extra <= 64; extra += 8) {
        check_count(f, VFU_PCI_DEV_BAR0_REGION_IDX, extra);
        check_count(f, VFU_PCI_DEV_CFG_REGION_IDX, extra);
    }
}

static void
test_reset(void **state)
{
    struct cfx *f = *state;

    for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
        set(&f->dev.reset_err, errs[i]);
        assert_int_equal(vfu_client_device_reset(f->c), -1);
        assert_int_equal(errno, expect(errs[i]));
        set(&f->dev.reset_err, -1);
        assert_int_equal(vfu_client_device_reset(f->c), 0);
        assert_works(f);
    }
}

static void
test_quiesce(void **state)
{
    struct cfx *f = *state;

    for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
        if (errs[i] == EBUSY) {
            continue;       /* EBUSY means "later", tested elsewhere */
        }
        set(&f->dev.quiesce_err, errs[i]);
        assert_int_equal(vfu_client_dma_map(f->c, 0x100000, 0x1000,
                                            VFIO_USER_F_DMA_REGION_READ, -1,
                                            0, NULL), -1);
        assert_int_equal(errno, expect(errs[i]));
        set(&f->dev.quiesce_err, -1);
        assert_int_equal(vfu_client_dma_map(f->c, 0x100000, 0x1000,
                                            VFIO_USER_F_DMA_REGION_READ, -1,
                                            0, NULL), 0);
        assert_int_equal(vfu_client_dma_unmap(f->c, 0x100000, 0x1000, 0), 0);
        assert_works(f);
    }
}

static void
test_migration(void **state)
{
    struct cfx *f = *state;
    uint32_t st;
    char buf[64];

    for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
        /* A failed transition leaves the device where it was, still
         * serving; the client may simply try again. */
        set(&f->dev.transition_err, errs[i]);
        assert_int_equal(vfu_client_mig_set_state(f->c,
                                                  VFIO_USER_DEVICE_STATE_STOP), -1);
        assert_int_equal(errno, expect(errs[i]));
        assert_int_equal(vfu_client_mig_get_state(f->c, &st), 0);
        assert_int_equal(st, VFIO_USER_DEVICE_STATE_RUNNING);
        assert_int_equal(vfu_client_region_read(f->c, 0, 0, buf, 4), 0);
        set(&f->dev.transition_err, -1);

        /* A failing read_data: the client sees its errno, the state stays. */
        assert_int_equal(vfu_client_mig_set_state(f->c,
                                                  VFIO_USER_DEVICE_STATE_STOP_COPY), 0);
        set(&f->dev.read_err, errs[i]);
        assert_true(vfu_client_mig_data_read(f->c, buf, sizeof(buf)) < 0);
        assert_int_equal(errno, expect(errs[i]));
        set(&f->dev.read_err, -1);
        assert_int_equal(vfu_client_mig_data_read(f->c, buf, sizeof(buf)),
                         (int)sizeof(buf));
        assert_int_equal(vfu_client_mig_set_state(f->c,
                                                  VFIO_USER_DEVICE_STATE_RUNNING), 0);
        assert_works(f);
    }
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_region), T(test_reset), T(test_quiesce), T(test_migration),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
