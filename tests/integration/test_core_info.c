/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/* DEVICE_GET_INFO, GET_REGION_INFO and GET_IRQ_INFO. */

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

static void
test_device_info(void **state)
{
    struct harness_fixture *f = *state;
    struct vfio_user_device_info info;

    assert_int_equal(vfu_client_device_get_info(f->c, &info), 0);
    assert_int_equal(info.argsz, sizeof(info));
    assert_true(info.flags & VFIO_DEVICE_FLAGS_PCI);
    assert_true(info.flags & VFIO_DEVICE_FLAGS_RESET);
    assert_int_equal(info.num_regions, VFU_PCI_DEV_NUM_REGIONS);
    assert_int_equal(info.num_irqs, VFU_DEV_NUM_IRQS);
}

static void
test_region_info_plain(void **state)
{
    struct harness_fixture *f = *state;
    struct vfu_client_region_info ri;

    assert_int_equal(vfu_client_get_region_info(f->c, VFU_PCI_DEV_BAR0_REGION_IDX,
                                                &ri), 0);
    assert_int_equal(ri.info.index, VFU_PCI_DEV_BAR0_REGION_IDX);
    assert_int_equal(ri.info.size, HARNESS_BAR0_SIZE);
    assert_int_equal(ri.info.argsz, sizeof(ri.info));
    assert_true(ri.info.flags & VFIO_REGION_INFO_FLAG_READ);
    assert_true(ri.info.flags & VFIO_REGION_INFO_FLAG_WRITE);
    assert_false(ri.info.flags & VFIO_REGION_INFO_FLAG_MMAP);
    assert_int_equal(ri.fd, -1);
    assert_int_equal(ri.nr_sparse, 0);
    vfu_client_region_info_free(&ri);
}

static void
test_region_info_config(void **state)
{
    struct harness_fixture *f = *state;
    struct vfu_client_region_info ri;

    assert_int_equal(vfu_client_get_region_info(f->c, VFU_PCI_DEV_CFG_REGION_IDX,
                                                &ri), 0);
    assert_int_equal(ri.info.size, 256);
    assert_true(ri.info.flags & VFIO_REGION_INFO_FLAG_READ);
    assert_true(ri.info.flags & VFIO_REGION_INFO_FLAG_WRITE);
    assert_int_equal(ri.fd, -1);
    vfu_client_region_info_free(&ri);
}

static void
test_region_info_unused(void **state)
{
    struct harness_fixture *f = *state;
    struct vfu_client_region_info ri;

    /* BAR3 was never set up: it exists with size 0. */
    assert_int_equal(vfu_client_get_region_info(f->c, VFU_PCI_DEV_BAR3_REGION_IDX,
                                                &ri), 0);
    assert_int_equal(ri.info.size, 0);
    assert_int_equal(ri.fd, -1);
    vfu_client_region_info_free(&ri);
}

static void
test_region_info_sparse_fd(void **state)
{
    struct harness_fixture *f = *state;
    struct vfu_client_region_info ri;

    assert_int_equal(vfu_client_get_region_info(f->c, VFU_PCI_DEV_BAR1_REGION_IDX,
                                                &ri), 0);
    assert_int_equal(ri.info.size, HARNESS_BAR1_SIZE);
    assert_true(ri.info.flags & VFIO_REGION_INFO_FLAG_MMAP);
    assert_true(ri.info.flags & VFIO_REGION_INFO_FLAG_CAPS);
    assert_true(ri.info.cap_offset >= sizeof(ri.info));
    assert_int_equal(ri.info.argsz, sizeof(ri.info) +
                     sizeof(struct vfio_region_info_cap_sparse_mmap) +
                     2 * sizeof(struct vfio_region_sparse_mmap_area));
    assert_int_equal(ri.nr_sparse, 2);
    assert_int_equal(ri.sparse[0].offset, 0x1000);
    assert_int_equal(ri.sparse[0].size, 0x1000);
    assert_int_equal(ri.sparse[1].offset, 0x3000);
    assert_int_equal(ri.sparse[1].size, 0x1000);
    assert_true(ri.fd >= 0);

    /* The fd maps the device's memory: a store is seen by REGION_READ. */
    uint8_t *p = mmap(NULL, 0x1000, PROT_READ | PROT_WRITE, MAP_SHARED, ri.fd,
                      (off_t)ri.info.offset + 0x3000);
    assert_true(p != MAP_FAILED);
    p[0x10] = 0xa5;
    uint8_t v = 0;
    assert_int_equal(vfu_client_region_read(f->c, VFU_PCI_DEV_BAR1_REGION_IDX,
                                            0x3010, &v, 1), 0);
    assert_int_equal(v, 0xa5);
    munmap(p, 0x1000);
    vfu_client_region_info_free(&ri);
}

static void
test_region_info_argsz_small(void **state)
{
    struct harness_fixture *f = *state;
    struct vfio_region_info req = {
        .argsz = sizeof(req), .index = VFU_PCI_DEV_BAR1_REGION_IDX,
    };
    struct vfio_region_info rep;
    size_t size = sizeof(rep);
    int fds[2] = { -1, -1 };
    uint32_t nr = 2;

    /* Room for the fixed part only: the answer says how much is needed
     * and carries no capabilities, nor the fd, which comes with them. */
    assert_int_equal(vfu_client_call(f->c, VFIO_USER_DEVICE_GET_REGION_INFO,
                                     &req, sizeof(req), NULL, 0, &rep, &size,
                                     fds, &nr), 0);
    assert_int_equal(size, sizeof(rep));
    assert_int_equal(rep.argsz, sizeof(rep) +
                     sizeof(struct vfio_region_info_cap_sparse_mmap) +
                     2 * sizeof(struct vfio_region_sparse_mmap_area));
    assert_int_equal(rep.size, HARNESS_BAR1_SIZE);
    assert_int_equal(rep.flags, VFIO_REGION_INFO_FLAG_READ |
                     VFIO_REGION_INFO_FLAG_WRITE | VFIO_REGION_INFO_FLAG_MMAP);
    assert_int_equal(rep.cap_offset, 0);
    assert_int_equal(nr, 0);

    /* Below the fixed part: refused. */
    req.argsz = sizeof(req) - 1;
    size = sizeof(rep);
    errno = 0;
    assert_int_equal(vfu_client_call(f->c, VFIO_USER_DEVICE_GET_REGION_INFO,
                                     &req, sizeof(req), NULL, 0, &rep, &size,
                                     NULL, NULL), -1);
    assert_int_equal(errno, EINVAL);
}

static void
test_region_info_bad_index(void **state)
{
    struct harness_fixture *f = *state;
    struct vfu_client_region_info ri;
    uint32_t bad[] = { VFU_PCI_DEV_NUM_REGIONS, 100, UINT32_MAX };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        errno = 0;
        assert_int_equal(vfu_client_get_region_info(f->c, bad[i], &ri), -1);
        assert_int_equal(errno, EINVAL);
    }
    /* Still fine afterwards. */
    assert_int_equal(vfu_client_get_region_info(f->c, 0, &ri), 0);
    vfu_client_region_info_free(&ri);
}

static void
test_irq_info(void **state)
{
    struct harness_fixture *f = *state;
    struct vfio_irq_info info;

    assert_int_equal(vfu_client_get_irq_info(f->c, VFU_DEV_INTX_IRQ, &info), 0);
    assert_int_equal(info.index, VFU_DEV_INTX_IRQ);
    assert_int_equal(info.count, 1);
    assert_true(info.flags & VFIO_IRQ_INFO_EVENTFD);
    assert_int_equal(info.argsz, sizeof(info));

    assert_int_equal(vfu_client_get_irq_info(f->c, VFU_DEV_MSIX_IRQ, &info), 0);
    assert_int_equal(info.count, HARNESS_NR_MSIX);

    assert_int_equal(vfu_client_get_irq_info(f->c, VFU_DEV_MSI_IRQ, &info), 0);
    assert_int_equal(info.count, 0);

    assert_int_equal(vfu_client_get_irq_info(f->c, VFU_DEV_ERR_IRQ, &info), 0);
    assert_int_equal(info.count, 1);
    assert_int_equal(vfu_client_get_irq_info(f->c, VFU_DEV_REQ_IRQ, &info), 0);
    assert_int_equal(info.count, 1);
}

static void
test_irq_info_bad(void **state)
{
    struct harness_fixture *f = *state;
    struct vfio_irq_info info;
    struct vfio_irq_info req = { .argsz = 8, .index = 0 };
    size_t size = sizeof(info);

    errno = 0;
    assert_int_equal(vfu_client_get_irq_info(f->c, VFU_DEV_NUM_IRQS, &info), -1);
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_int_equal(vfu_client_get_irq_info(f->c, UINT32_MAX, &info), -1);
    assert_int_equal(errno, EINVAL);
    /* argsz below the fixed reply. */
    errno = 0;
    assert_int_equal(vfu_client_call(f->c, VFIO_USER_DEVICE_GET_IRQ_INFO, &req,
                                     sizeof(req), NULL, 0, &info, &size, NULL,
                                     NULL), -1);
    assert_int_equal(errno, EINVAL);
    /* Truncated request. */
    size = sizeof(info);
    errno = 0;
    assert_int_equal(vfu_client_call(f->c, VFIO_USER_DEVICE_GET_IRQ_INFO, &req,
                                     8, NULL, 0, &info, &size, NULL, NULL), -1);
    assert_int_equal(errno, EINVAL);
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, harness_fixture_setup, \
                                              harness_fixture_teardown)
    const struct CMUnitTest tests[] = {
        T(test_device_info),
        T(test_region_info_plain),
        T(test_region_info_config),
        T(test_region_info_unused),
        T(test_region_info_sparse_fd),
        T(test_region_info_argsz_small),
        T(test_region_info_bad_index),
        T(test_irq_info),
        T(test_irq_info_bad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
