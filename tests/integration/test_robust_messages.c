/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * Malformed input over a real socket, against a server in a child process:
 * every bad message gets an error reply (or the connection is dropped for a
 * broken stream), the server keeps serving, and it leaks no fds.
 */

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

/* A fresh client is served, and the server is back to its fd baseline. */
static void
assert_server_healthy(struct harness_fixture *f)
{
    vfu_client_t *c = harness_connect(f->srv);
    struct vfio_user_device_info info;
    uint32_t v;

    assert_int_equal(vfu_client_device_get_info(c, &info), 0);
    assert_int_equal(vfu_client_region_read(c, 0, 0, &v, 4), 0);
    vfu_client_close(c);
    harness_assert_fd_count(f->pid, f->base_fds, WAIT_MS);
}

static void
test_truncated(void **state)
{
    struct harness_fixture *f = *state;
    vfu_client_t *c = harness_connect(f->srv);
    static const uint16_t cmds[] = {
        VFIO_USER_DMA_MAP, VFIO_USER_DMA_UNMAP, VFIO_USER_DEVICE_GET_INFO,
        VFIO_USER_DEVICE_GET_REGION_INFO, VFIO_USER_DEVICE_GET_REGION_IO_FDS,
        VFIO_USER_DEVICE_GET_IRQ_INFO, VFIO_USER_DEVICE_SET_IRQS,
        VFIO_USER_REGION_READ, VFIO_USER_REGION_WRITE,
        VFIO_USER_REGION_WRITE_MULTI, VFIO_USER_DEVICE_FEATURE,
    };
    uint8_t zero[32] = { 0 };
    size_t sizes[] = { 0, 1, 3, 7 };
    int bad = 0;

    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
            int err = harness_call_errno(c, cmds[i], zero, sizes[k], NULL, 0);
            if (err != EINVAL) {
                print_error("cmd %u with %zu bytes: errno %d\n", cmds[i],
                            sizes[k], err);
                bad++;
            }
        }
    }
    vfu_client_close(c);
    assert_int_equal(bad, 0);
    assert_server_healthy(f);
}

static void
test_bad_argsz(void **state)
{
    struct harness_fixture *f = *state;
    vfu_client_t *c = harness_connect(f->srv);
    struct vfio_user_device_info di = { .argsz = 4 };
    struct vfio_region_info ri = { .argsz = 0, .index = 0 };
    struct vfio_user_dma_map dm = { .argsz = 8, .addr = 0x10000,
                                    .size = 0x1000, .flags = 3 };
    struct vfio_user_device_feature df = {
        .argsz = 2, .flags = VFIO_DEVICE_FEATURE_GET |
                             VFIO_DEVICE_FEATURE_MIGRATION,
    };

    assert_int_equal(harness_call_errno(c, VFIO_USER_DEVICE_GET_INFO, &di, sizeof(di),
                                        NULL, 0), EINVAL);
    assert_int_equal(harness_call_errno(c, VFIO_USER_DEVICE_GET_REGION_INFO, &ri,
                                        sizeof(ri), NULL, 0), EINVAL);
    assert_int_equal(harness_call_errno(c, VFIO_USER_DMA_MAP, &dm, sizeof(dm), NULL, 0),
                               EINVAL);
    int err = harness_call_errno(c, VFIO_USER_DEVICE_FEATURE, &df, sizeof(df), NULL, 0);
    assert_true(err == EINVAL || err == ENOTSUP);
    vfu_client_close(c);
    assert_server_healthy(f);
}

static void
test_ranges_and_wrap(void **state)
{
    struct harness_fixture *f = *state;
    vfu_client_t *c = harness_connect(f->srv);
    struct vfio_user_region_access ra = {
        .offset = UINT64_MAX - 1, .region = 0, .count = 4,
    };
    struct vfio_user_dma_map dm = {
        .argsz = sizeof(dm), .flags = 3, .addr = UINT64_MAX - 0xfff,
        .size = 0x2000,
    };
    struct vfio_user_dma_unmap du = {
        .argsz = sizeof(du), .flags = VFIO_DMA_UNMAP_FLAG_ALL, .addr = 0x1000,
        .size = 0x1000,
    };
    struct {
        struct vfio_user_region_access a;
        uint8_t d[4];
    } __attribute__((packed)) wr = { .a = { .offset = 0, .region = 0,
                                            .count = 8 } };

    assert_int_equal(harness_call_errno(c, VFIO_USER_REGION_READ, &ra, sizeof(ra),
                                        NULL, 0), EINVAL);
    ra.offset = 0;
    ra.count = UINT32_MAX;
    int err = harness_call_errno(c, VFIO_USER_REGION_READ, &ra, sizeof(ra), NULL, 0);
    assert_true(err == EINVAL || err == E2BIG);
    ra.region = UINT32_MAX;
    ra.count = 4;
    assert_int_equal(harness_call_errno(c, VFIO_USER_REGION_READ, &ra, sizeof(ra),
                                        NULL, 0), EINVAL);
    /* count says 8, 4 bytes follow. */
    assert_int_equal(harness_call_errno(c, VFIO_USER_REGION_WRITE, &wr, sizeof(wr),
                                        NULL, 0), EINVAL);
    assert_int_equal(harness_call_errno(c, VFIO_USER_DMA_MAP, &dm, sizeof(dm), NULL, 0),
                               EINVAL);
    dm.addr = 0x10000;
    dm.size = 0;
    assert_int_equal(harness_call_errno(c, VFIO_USER_DMA_MAP, &dm, sizeof(dm), NULL, 0),
                               EINVAL);
    assert_int_equal(harness_call_errno(c, VFIO_USER_DMA_UNMAP, &du, sizeof(du), NULL, 0),
                               EINVAL);
    /* WRITE_MULTI: wr_cnt larger than the entries sent, and zero. */
    struct vfio_user_write_multi wm = { .wr_cnt = 5 };
    assert_int_equal(harness_call_errno(c, VFIO_USER_REGION_WRITE_MULTI, &wm,
                                        sizeof(wm), NULL, 0), EINVAL);
    wm.wr_cnt = 0;
    assert_int_equal(harness_call_errno(c, VFIO_USER_REGION_WRITE_MULTI, &wm,
                                        sizeof(wm), NULL, 0), EINVAL);
    vfu_client_close(c);
    assert_server_healthy(f);
}

static void
test_oversized(void **state)
{
    struct harness_fixture *f = *state;
    vfu_client_t *c = harness_connect(f->srv);
    size_t n = 5u << 20;            /* well past any max_data_xfer_size */
    uint8_t *big = calloc(1, n);
    struct vfio_user_region_access *a = (void *)big;

    a->offset = 0;
    a->region = 2;
    a->count = (uint32_t)(n - sizeof(*a));
    int err = harness_call_errno(c, VFIO_USER_REGION_WRITE, big, n, NULL, 0);
    assert_int_equal(err, EINVAL);
    free(big);
    /* The same connection keeps working: the payload was skipped. */
    uint32_t v;
    assert_int_equal(vfu_client_region_read(c, 0, 0, &v, 4), 0);
    vfu_client_close(c);
    assert_server_healthy(f);
}

static void
test_unknown_commands(void **state)
{
    struct harness_fixture *f = *state;
    vfu_client_t *c = harness_connect(f->srv);
    uint16_t cmds[] = { 0, 14, VFIO_USER_MAX, 100, UINT16_MAX,
                        VFIO_USER_DMA_READ, VFIO_USER_DMA_WRITE };
    uint8_t payload[16] = { 0 };

    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        int err = harness_call_errno(c, cmds[i], payload, sizeof(payload), NULL, 0);
        if (err != EINVAL) {
            fail_msg("cmd %u: errno %d", cmds[i], err);
        }
    }
    /* A second VERSION is refused too. */
    assert_int_equal(vfu_client_negotiate(c, NULL, NULL), -1);
    vfu_client_close(c);
    assert_server_healthy(f);
}

static void
test_reply_from_client(void **state)
{
    struct harness_fixture *f = *state;
    vfu_client_t *c = harness_connect(f->srv);
    struct vfio_user_header h = {
        .msg_id = 0x4242, .cmd = VFIO_USER_DMA_READ, .msg_size = 32,
        .flags = VFIO_USER_F_TYPE_REPLY,
    };
    uint8_t m[32] = { 0 };

    /* A reply nobody asked for is dropped (or refused), nothing else. */
    memcpy(m, &h, sizeof(h));
    assert_int_equal(vfu_client_send_raw(c, m, sizeof(m), NULL, 0), 0);
    /* Another header type value. */
    h.flags = 0x7;
    h.msg_size = 16;
    assert_int_equal(vfu_client_send_raw(c, &h, sizeof(h), NULL, 0), 0);
    uint32_t v;
    int rc = vfu_client_region_read(c, 0, 0, &v, 4);
    vfu_client_close(c);
    (void)rc;
    assert_server_healthy(f);
}

static void
test_too_many_fds(void **state)
{
    struct harness_fixture *f = *state;
    vfu_client_t *c = harness_connect(f->srv);
    struct vfio_user_device_info di = { .argsz = sizeof(di) };
    int fds[40];

    assert_int_equal(harness_eventfds(fds, 40), 0);
    /* fds with a command that takes none, and more than max_msg_fds. */
    int err = harness_call_errno(c, VFIO_USER_DEVICE_GET_INFO, &di, sizeof(di), fds, 2);
    assert_true(err == 0 || err == EINVAL);
    err = harness_call_errno(c, VFIO_USER_DEVICE_GET_INFO, &di, sizeof(di), fds, 40);
    assert_true(err == 0 || err == EINVAL);
    /* SET_IRQS with more eventfds than the server accepts in one message. */
    struct vfio_irq_set is = {
        .argsz = sizeof(is), .index = VFU_DEV_MSIX_IRQ, .start = 0, .count = 40,
        .flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
    };
    assert_int_equal(harness_call_errno(c, VFIO_USER_DEVICE_SET_IRQS, &is, sizeof(is),
                                        fds, 40), EINVAL);
    /* The server holds none of them while the client is still connected:
     * its count is the baseline plus the connection. */
    harness_assert_fd_count(f->pid, f->base_fds + 1, WAIT_MS);
    harness_close_fds(fds, 40);
    vfu_client_close(c);
    assert_server_healthy(f);
}

static void
test_broken_stream(void **state)
{
    struct harness_fixture *f = *state;
    vfu_client_t *c = harness_connect(f->srv);
    struct vfio_user_header h = { .cmd = VFIO_USER_DEVICE_GET_INFO,
                                  .msg_size = 8 };
    struct vfio_user_header rh;
    size_t size = 0;

    /* msg_size below the header size: answered EINVAL, and the stream is
     * read on after the 16 bytes of the header. */
    h.msg_id = vfu_client_next_msg_id(c);
    assert_int_equal(vfu_client_send_raw(c, &h, sizeof(h), NULL, 0), 0);
    assert_int_equal(vfu_client_recv_raw(c, &rh, NULL, &size, NULL, NULL,
                                         WAIT_MS), 0);
    assert_int_equal(rh.msg_id, h.msg_id);
    assert_true(rh.flags & VFIO_USER_F_ERROR);
    assert_int_equal(rh.error_no, EINVAL);
    assert_int_equal(size, 0);
    uint32_t v;
    assert_int_equal(vfu_client_region_read(c, 0, 0, &v, 4), 0);
    /* msg_size 0 likewise. */
    h.msg_size = 0;
    h.msg_id = vfu_client_next_msg_id(c);
    assert_int_equal(vfu_client_send_raw(c, &h, sizeof(h), NULL, 0), 0);
    assert_int_equal(vfu_client_recv_raw(c, &rh, NULL, &size, NULL, NULL,
                                         WAIT_MS), 0);
    assert_int_equal(rh.error_no, EINVAL);
    assert_int_equal(vfu_client_region_read(c, 0, 0, &v, 4), 0);
    vfu_client_close(c);
    assert_server_healthy(f);
}

static void
test_disconnect_mid_message(void **state)
{
    struct harness_fixture *f = *state;
    uint8_t part[16 + 16 + 100] = { 0 };
    int efd = harness_eventfd();

    /* The header announces 4 KiB of data; at most 100 bytes of it come. */
    harness_msg(part, 0, VFIO_USER_REGION_WRITE, NULL, 16 + 4096);
    /* Half a header. */
    vfu_client_t *c = harness_connect(f->srv);
    assert_int_equal(vfu_client_send_raw(c, part, 7, NULL, 0), 0);
    vfu_client_close(c);
    assert_server_healthy(f);
    /* A header and part of the payload, with an fd along. */
    c = harness_connect(f->srv);
    assert_int_equal(vfu_client_send_raw(c, part, sizeof(part), &efd, 1), 0);
    vfu_client_close(c);
    assert_server_healthy(f);
    /* Before VERSION. */
    c = vfu_client_connect(harness_server_path(f->srv));
    assert_non_null(c);
    assert_int_equal(vfu_client_send_raw(c, part, 20, NULL, 0), 0);
    vfu_client_close(c);
    close(efd);
    assert_server_healthy(f);
}

static void
test_garbage_version(void **state)
{
    struct harness_fixture *f = *state;
    uint8_t junk[64];

    for (size_t i = 0; i < sizeof(junk); i++) {
        junk[i] = (uint8_t)(i * 37 + 11);
    }
    vfu_client_t *c = vfu_client_connect(harness_server_path(f->srv));
    assert_int_equal(vfu_client_negotiate_raw(c, 0, 0, junk, sizeof(junk),
                                              NULL), -1);
    vfu_client_close(c);
    /* A command with a bad header before VERSION. */
    c = vfu_client_connect(harness_server_path(f->srv));
    struct vfio_user_device_info di = { .argsz = sizeof(di) };
    int err = harness_call_errno(c, VFIO_USER_DEVICE_GET_INFO, &di, sizeof(di), NULL, 0);
    assert_true(err == EINVAL || err == ENOTCONN);
    vfu_client_close(c);
    assert_server_healthy(f);
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, \
        harness_fixture_setup_process_noclient, harness_fixture_teardown)
    const struct CMUnitTest tests[] = {
        T(test_truncated),
        T(test_bad_argsz),
        T(test_ranges_and_wrap),
        T(test_oversized),
        T(test_unknown_commands),
        T(test_reply_from_client),
        T(test_too_many_fds),
        T(test_broken_stream),
        T(test_disconnect_mid_message),
        T(test_garbage_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
