/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/* SET_IRQS with real eventfds, and vfu_irq_trigger from the device. */

#include <errno.h>
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
#define QUIET_MS 100

static vfu_ctx_t *
ctx_of(struct harness_fixture *f)
{
    return harness_server_ctx(f->srv);
}

static void
test_intx_trigger(void **state)
{
    struct harness_fixture *f = *state;
    int efd = harness_eventfd();

    assert_true(efd >= 0);
    assert_int_equal(vfu_client_set_irqs(f->c, VFIO_IRQ_SET_DATA_EVENTFD |
                                         VFIO_IRQ_SET_ACTION_TRIGGER,
                                         VFU_DEV_INTX_IRQ, 0, 1, &efd, 1,
                                         NULL, 0), 0);
    assert_int_equal(vfu_irq_trigger(ctx_of(f), 0), 0);
    assert_int_equal(harness_eventfd_wait(efd, WAIT_MS), 1);
    assert_int_equal(vfu_irq_trigger(ctx_of(f), 0), 0);
    assert_int_equal(vfu_irq_trigger(ctx_of(f), 0), 0);
    assert_int_equal(harness_eventfd_wait(efd, WAIT_MS), 2);
    /* A vector INTx lacks but MSI-X has: not set up. */
    errno = 0;
    assert_int_equal(vfu_irq_trigger(ctx_of(f), 1), -1);
    assert_int_equal(errno, ENOENT);
    /* Beyond every type's count: out of range. */
    errno = 0;
    assert_int_equal(vfu_irq_trigger(ctx_of(f), 4096), -1);
    assert_int_equal(errno, EINVAL);
    close(efd);
}

static void
test_intx_mask_unmask(void **state)
{
    struct harness_fixture *f = *state;
    int efd = harness_eventfd();

    assert_int_equal(vfu_client_set_irqs(f->c, VFIO_IRQ_SET_DATA_EVENTFD |
                                         VFIO_IRQ_SET_ACTION_TRIGGER,
                                         VFU_DEV_INTX_IRQ, 0, 1, &efd, 1,
                                         NULL, 0), 0);
    assert_int_equal(vfu_client_set_irqs(f->c, VFIO_IRQ_SET_DATA_NONE |
                                         VFIO_IRQ_SET_ACTION_MASK,
                                         VFU_DEV_INTX_IRQ, 0, 1, NULL, 0,
                                         NULL, 0), 0);
    vfu_irq_trigger(ctx_of(f), 0);
    assert_int_equal(harness_eventfd_wait(efd, QUIET_MS), 0);
    assert_int_equal(vfu_client_set_irqs(f->c, VFIO_IRQ_SET_DATA_NONE |
                                         VFIO_IRQ_SET_ACTION_UNMASK,
                                         VFU_DEV_INTX_IRQ, 0, 1, NULL, 0,
                                         NULL, 0), 0);
    /* Drain anything delivered on unmask, then a fresh trigger arrives. */
    harness_eventfd_wait(efd, QUIET_MS);
    assert_int_equal(vfu_irq_trigger(ctx_of(f), 0), 0);
    assert_int_equal(harness_eventfd_wait(efd, WAIT_MS), 1);
    close(efd);
}

/* Every index takes eventfds; only INTx can be masked, and MSI/MSI-X
 * vectors may be set one range at a time (no NORESIZE). */
static void
test_irq_info(void **state)
{
    struct harness_fixture *f = *state;
    struct vfio_irq_info info;

    assert_int_equal(vfu_client_get_irq_info(f->c, VFU_DEV_MSIX_IRQ, &info), 0);
    assert_int_equal(info.flags, VFIO_IRQ_INFO_EVENTFD);
    assert_int_equal(info.count, HARNESS_NR_MSIX);
    assert_int_equal(vfu_client_get_irq_info(f->c, VFU_DEV_ERR_IRQ, &info), 0);
    assert_int_equal(info.flags, VFIO_IRQ_INFO_EVENTFD);
    assert_int_equal(info.count, 1);
    assert_int_equal(vfu_client_get_irq_info(f->c, VFU_DEV_INTX_IRQ, &info), 0);
    assert_true(info.flags & VFIO_IRQ_INFO_EVENTFD);
    assert_true(info.flags & VFIO_IRQ_INFO_MASKABLE);
}

static void
setup_msix(struct harness_fixture *f, int efd[HARNESS_NR_MSIX])
{
    for (unsigned i = 0; i < HARNESS_NR_MSIX; i++) {
        efd[i] = harness_eventfd();
        assert_true(efd[i] >= 0);
    }
    assert_int_equal(vfu_client_set_irqs(f->c, VFIO_IRQ_SET_DATA_EVENTFD |
                                         VFIO_IRQ_SET_ACTION_TRIGGER,
                                         VFU_DEV_MSIX_IRQ, 0, HARNESS_NR_MSIX,
                                         efd, HARNESS_NR_MSIX, NULL, 0), 0);
}

static void
close_all(int *fds, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        close(fds[i]);
    }
}

static void
test_msix_vectors(void **state)
{
    struct harness_fixture *f = *state;
    int efd[HARNESS_NR_MSIX];

    setup_msix(f, efd);
    /* MSI-X enabled: the library picks it over INTx. */
    assert_int_equal(vfu_irq_trigger(ctx_of(f), 2), 0);
    assert_int_equal(harness_eventfd_wait(efd[2], WAIT_MS), 1);
    assert_int_equal(harness_eventfd_wait(efd[0], QUIET_MS), 0);
    assert_int_equal(harness_eventfd_wait(efd[1], 0), 0);
    assert_int_equal(harness_eventfd_wait(efd[3], 0), 0);
    close_all(efd, HARNESS_NR_MSIX);
}

/* A device with more MSI-X vectors than a message may carry eventfds. */
#define MANY_MSIX 20

static int
setup_many_msix(vfu_ctx_t *ctx, void *arg)
{
    if (harness_dev_setup(ctx, arg) < 0) {
        return -1;
    }
    return vfu_setup_device_nr_irqs(ctx, VFU_DEV_MSIX_IRQ, MANY_MSIX);
}

/*
 * An eventfd for each of 20 vectors, the server taking 8 fds a message:
 * the client sends them in pieces, as QEMU does, and every vector works.
 */
static void
test_msix_more_vectors_than_fds(void **state)
{
    struct harness_dev dev;
    struct harness_server *srv;
    vfu_client_t *c;
    int efd[MANY_MSIX];

    (void)state;
    assert_int_equal(harness_dev_init(&dev), 0);
    srv = harness_server_start(setup_many_msix, &dev);
    assert_non_null(srv);
    c = harness_connect(srv);
    assert_int_equal(harness_eventfds(efd, MANY_MSIX), 0);
    assert_int_equal(vfu_client_set_irqs(c, VFIO_IRQ_SET_DATA_EVENTFD |
                                         VFIO_IRQ_SET_ACTION_TRIGGER,
                                         VFU_DEV_MSIX_IRQ, 0, MANY_MSIX,
                                         efd, MANY_MSIX, NULL, 0), 0);
    for (unsigned v = 0; v < MANY_MSIX; v += 9) {        /* 0, 9, 18 */
        assert_int_equal(vfu_irq_trigger(harness_server_ctx(srv), v), 0);
        assert_int_equal(harness_eventfd_wait(efd[v], WAIT_MS), 1);
    }
    assert_int_equal(vfu_irq_trigger(harness_server_ctx(srv), MANY_MSIX - 1), 0);
    assert_int_equal(harness_eventfd_wait(efd[MANY_MSIX - 1], WAIT_MS), 1);
    assert_int_equal(harness_eventfd_wait(efd[MANY_MSIX - 2], 0), 0);
    harness_close_fds(efd, MANY_MSIX);
    vfu_client_close(c);
    assert_int_equal(harness_server_stop(srv), 0);
    harness_dev_fini(&dev);
}

static void
test_data_bool_trigger(void **state)
{
    struct harness_fixture *f = *state;
    int efd[HARNESS_NR_MSIX];
    uint8_t which[HARNESS_NR_MSIX] = { 0, 1, 0, 1 };

    setup_msix(f, efd);
    /* The client triggers vectors 1 and 3 itself. */
    assert_int_equal(vfu_client_set_irqs(f->c, VFIO_IRQ_SET_DATA_BOOL |
                                         VFIO_IRQ_SET_ACTION_TRIGGER,
                                         VFU_DEV_MSIX_IRQ, 0, HARNESS_NR_MSIX,
                                         NULL, 0, which, sizeof(which)), 0);
    assert_int_equal(harness_eventfd_wait(efd[1], WAIT_MS), 1);
    assert_int_equal(harness_eventfd_wait(efd[3], WAIT_MS), 1);
    assert_int_equal(harness_eventfd_wait(efd[0], QUIET_MS), 0);
    assert_int_equal(harness_eventfd_wait(efd[2], 0), 0);

    /* DATA_NONE triggers the whole range. */
    assert_int_equal(vfu_client_set_irqs(f->c, VFIO_IRQ_SET_DATA_NONE |
                                         VFIO_IRQ_SET_ACTION_TRIGGER,
                                         VFU_DEV_MSIX_IRQ, 1, 2, NULL, 0,
                                         NULL, 0), 0);
    assert_int_equal(harness_eventfd_wait(efd[1], WAIT_MS), 1);
    assert_int_equal(harness_eventfd_wait(efd[2], WAIT_MS), 1);
    assert_int_equal(harness_eventfd_wait(efd[0], QUIET_MS), 0);
    close_all(efd, HARNESS_NR_MSIX);
}

static void
test_unassign(void **state)
{
    struct harness_fixture *f = *state;
    int efd[HARNESS_NR_MSIX];
    int none = -1;

    setup_msix(f, efd);
    /* Vector 1 with fd -1: nothing is sent along, which de-assigns it. */
    assert_int_equal(vfu_client_set_irqs(f->c, VFIO_IRQ_SET_DATA_EVENTFD |
                                         VFIO_IRQ_SET_ACTION_TRIGGER,
                                         VFU_DEV_MSIX_IRQ, 1, 1, &none, 1,
                                         NULL, 0), 0);
    errno = 0;
    assert_int_equal(vfu_irq_trigger(ctx_of(f), 1), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(vfu_irq_trigger(ctx_of(f), 0), 0);
    assert_int_equal(harness_eventfd_wait(efd[0], WAIT_MS), 1);

    /* start 0, count 0, DATA_NONE: everything of the index goes. */
    assert_int_equal(vfu_client_set_irqs(f->c, VFIO_IRQ_SET_DATA_NONE |
                                         VFIO_IRQ_SET_ACTION_TRIGGER,
                                         VFU_DEV_MSIX_IRQ, 0, 0, NULL, 0,
                                         NULL, 0), 0);
    for (unsigned i = 0; i < HARNESS_NR_MSIX; i++) {
        assert_int_equal(vfu_irq_trigger(ctx_of(f), i), -1);
    }
    close_all(efd, HARNESS_NR_MSIX);
}

static void
expect_set_irqs_einval(struct harness_fixture *f, uint32_t flags,
                       uint32_t index, uint32_t start, uint32_t count,
                       const int *fds, uint32_t nr_fds, const void *data,
                       size_t data_size)
{
    errno = 0;
    assert_int_equal(vfu_client_set_irqs(f->c, flags, index, start, count,
                                         fds, nr_fds, data, data_size), -1);
    assert_int_equal(errno, EINVAL);
}

static void
test_set_irqs_errors(void **state)
{
    struct harness_fixture *f = *state;
    int base = harness_fd_count(0);
    int efd[HARNESS_NR_MSIX + 1];
    uint8_t b[8] = { 1, 1, 1, 1, 1, 1, 1, 1 };
    const uint32_t trig = VFIO_IRQ_SET_ACTION_TRIGGER;

    for (unsigned i = 0; i <= HARNESS_NR_MSIX; i++) {
        efd[i] = harness_eventfd();
    }
    /* Unknown index. */
    expect_set_irqs_einval(f, VFIO_IRQ_SET_DATA_NONE | trig, VFU_DEV_NUM_IRQS,
                           0, 1, NULL, 0, NULL, 0);
    expect_set_irqs_einval(f, VFIO_IRQ_SET_DATA_NONE | trig, UINT32_MAX,
                           0, 1, NULL, 0, NULL, 0);
    /* Range beyond the vectors, and wrapping. */
    expect_set_irqs_einval(f, VFIO_IRQ_SET_DATA_NONE | trig, VFU_DEV_MSIX_IRQ,
                           3, 2, NULL, 0, NULL, 0);
    expect_set_irqs_einval(f, VFIO_IRQ_SET_DATA_NONE | trig, VFU_DEV_MSIX_IRQ,
                           UINT32_MAX, 2, NULL, 0, NULL, 0);
    /* Two data kinds, two actions, none at all. */
    expect_set_irqs_einval(f, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_DATA_BOOL |
                           trig, VFU_DEV_MSIX_IRQ, 0, 1, NULL, 0, b, 1);
    expect_set_irqs_einval(f, VFIO_IRQ_SET_DATA_NONE | trig |
                           VFIO_IRQ_SET_ACTION_MASK, VFU_DEV_MSIX_IRQ, 0, 1,
                           NULL, 0, NULL, 0);
    expect_set_irqs_einval(f, trig, VFU_DEV_MSIX_IRQ, 0, 1, NULL, 0, NULL, 0);
    expect_set_irqs_einval(f, VFIO_IRQ_SET_DATA_NONE, VFU_DEV_MSIX_IRQ, 0, 1,
                           NULL, 0, NULL, 0);
    /* Unknown flag bits. */
    expect_set_irqs_einval(f, VFIO_IRQ_SET_DATA_NONE | trig | (1u << 20),
                           VFU_DEV_MSIX_IRQ, 0, 1, NULL, 0, NULL, 0);
    /* DATA_BOOL with too few bytes, too many. */
    expect_set_irqs_einval(f, VFIO_IRQ_SET_DATA_BOOL | trig, VFU_DEV_MSIX_IRQ,
                           0, 4, NULL, 0, b, 2);
    expect_set_irqs_einval(f, VFIO_IRQ_SET_DATA_BOOL | trig, VFU_DEV_MSIX_IRQ,
                           0, 1, NULL, 0, b, 8);
    /* More eventfds than vectors. */
    expect_set_irqs_einval(f, VFIO_IRQ_SET_DATA_EVENTFD | trig,
                           VFU_DEV_MSIX_IRQ, 0, 2, efd, 3, NULL, 0);
    /* Eventfds with DATA_NONE. */
    expect_set_irqs_einval(f, VFIO_IRQ_SET_DATA_NONE | trig,
                           VFU_DEV_MSIX_IRQ, 0, 2, efd, 2, NULL, 0);
    /* count 0 only disables a whole index: TRIGGER, DATA_NONE, start 0. */
    expect_set_irqs_einval(f, VFIO_IRQ_SET_DATA_NONE | trig,
                           VFU_DEV_MSIX_IRQ, 1, 0, NULL, 0, NULL, 0);
    expect_set_irqs_einval(f, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK,
                           VFU_DEV_MSIX_IRQ, 0, 0, NULL, 0, NULL, 0);
    expect_set_irqs_einval(f, VFIO_IRQ_SET_DATA_BOOL | trig,
                           VFU_DEV_MSIX_IRQ, 0, 0, NULL, 0, NULL, 0);
    expect_set_irqs_einval(f, VFIO_IRQ_SET_DATA_EVENTFD | trig,
                           VFU_DEV_MSIX_IRQ, 0, 0, NULL, 0, NULL, 0);
    /* The error and request IRQs cannot be masked or unmasked. */
    expect_set_irqs_einval(f, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK,
                           VFU_DEV_ERR_IRQ, 0, 1, NULL, 0, NULL, 0);
    expect_set_irqs_einval(f, VFIO_IRQ_SET_DATA_NONE |
                           VFIO_IRQ_SET_ACTION_UNMASK,
                           VFU_DEV_REQ_IRQ, 0, 1, NULL, 0, NULL, 0);

    /* Nothing took effect: no vector is assigned. */
    errno = 0;
    assert_int_equal(vfu_irq_trigger(ctx_of(f), 0), -1);

    /* The server closed every fd it was sent with a refused request. */
    close_all(efd, HARNESS_NR_MSIX + 1);
    assert_int_equal(harness_fd_count_settle(0, base, WAIT_MS), base);
}

static void
test_reassign_closes_old(void **state)
{
    struct harness_fixture *f = *state;
    int base = harness_fd_count(0);
    int a = harness_eventfd(), b = harness_eventfd();

    assert_int_equal(vfu_client_set_irqs(f->c, VFIO_IRQ_SET_DATA_EVENTFD |
                                         VFIO_IRQ_SET_ACTION_TRIGGER,
                                         VFU_DEV_INTX_IRQ, 0, 1, &a, 1,
                                         NULL, 0), 0);
    assert_int_equal(vfu_client_set_irqs(f->c, VFIO_IRQ_SET_DATA_EVENTFD |
                                         VFIO_IRQ_SET_ACTION_TRIGGER,
                                         VFU_DEV_INTX_IRQ, 0, 1, &b, 1,
                                         NULL, 0), 0);
    assert_int_equal(vfu_irq_trigger(ctx_of(f), 0), 0);
    assert_int_equal(harness_eventfd_wait(b, WAIT_MS), 1);
    assert_int_equal(harness_eventfd_wait(a, QUIET_MS), 0);
    close(a);
    close(b);
    /* The server holds one eventfd (b's copy) now, not two. */
    assert_int_equal(harness_fd_count_settle(0, base + 1, WAIT_MS), base + 1);

    /* A lost client's eventfds are closed, with both socket ends. */
    vfu_client_close(f->c);
    f->c = NULL;
    assert_int_equal(harness_fd_count_settle(0, base - 2, WAIT_MS), base - 2);
    f->c = harness_connect(f->srv);
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, harness_fixture_setup, \
                                              harness_fixture_teardown)
    const struct CMUnitTest tests[] = {
        T(test_intx_trigger),
        T(test_intx_mask_unmask),
        T(test_irq_info),
        T(test_msix_vectors),
        cmocka_unit_test(test_msix_more_vectors_than_fds),
        T(test_data_bool_trigger),
        T(test_unassign),
        T(test_set_irqs_errors),
        T(test_reassign_closes_old),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
