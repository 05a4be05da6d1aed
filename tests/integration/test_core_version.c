/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/* VERSION negotiation over a real socket. */

#include <errno.h>
#include <stdbool.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

struct fx {
    struct harness_dev dev;
    struct harness_server *srv;
};

static int
setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    assert_int_equal(harness_dev_init(&f->dev), 0);
    f->srv = harness_server_start(harness_dev_setup, &f->dev);
    assert_non_null(f->srv);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;

    assert_int_equal(harness_server_stop(f->srv), 0);
    harness_dev_fini(&f->dev);
    free(f);
    return 0;
}

static vfu_client_t *
connect_raw(struct fx *f)
{
    vfu_client_t *c = vfu_client_connect(harness_server_path(f->srv));
    assert_non_null(c);
    return c;
}

/* After a rejected VERSION the server must still serve a fresh client. */
static void
assert_fresh_client_ok(struct fx *f)
{
    vfu_client_t *c = harness_connect(f->srv);
    struct vfio_user_device_info info;

    assert_int_equal(vfu_client_device_get_info(c, &info), 0);
    assert_int_equal(info.num_regions, VFU_PCI_DEV_NUM_REGIONS);
    vfu_client_close(c);
}

/* QEMU 10.1's hello, byte for byte as a JSON document. */
static const char qemu_hello[] =
    "{\"capabilities\":{\"max_msg_fds\":16,\"max_data_xfer_size\":1048576,"
    "\"pgsizes\":4096,\"max_dma_maps\":65535,"
    "\"migration\":{\"pgsize\":4096,\"max_bitmap_size\":268435456},"
    "\"write_multiple\":true}}";

static void
test_qemu_hello(void **state)
{
    struct fx *f = *state;
    vfu_client_t *c = connect_raw(f);
    struct vfu_client_caps got;

    assert_int_equal(vfu_client_negotiate_raw(c, 0, 0, qemu_hello,
                                              sizeof(qemu_hello), &got), 0);
    assert_int_equal(got.major, 0);
    assert_int_equal(got.minor, 0);
    assert_true(got.max_msg_fds >= 1);
    assert_true(got.max_data_xfer_size >= 4096);
    assert_true(got.max_data_xfer_size <= (1u << 20));
    assert_true(got.pgsizes & 4096);
    assert_true(got.write_multiple);
    assert_false(got.twin_socket);
    /* The session works afterwards. */
    struct vfio_user_device_info info;
    assert_int_equal(vfu_client_device_get_info(c, &info), 0);
    vfu_client_close(c);
}

static void
test_default_negotiate(void **state)
{
    struct fx *f = *state;
    vfu_client_t *c = connect_raw(f);
    struct vfu_client_caps got;

    assert_int_equal(vfu_client_negotiate(c, NULL, &got), 0);
    assert_memory_equal(&got, vfu_client_caps(c), sizeof(got));
    vfu_client_close(c);
}

static void
test_no_json(void **state)
{
    struct fx *f = *state;
    vfu_client_t *c = connect_raw(f);
    struct vfu_client_caps got;

    /* Capabilities are optional: defaults apply. */
    assert_int_equal(vfu_client_negotiate_raw(c, 0, 0, NULL, 0, &got), 0);
    assert_int_equal(got.major, 0);
    vfu_client_close(c);
}

/* A client may say it takes up to 1024 fds a message; the server's own
 * bound is what it answers. */
static void
test_max_fds_limit(void **state)
{
    struct fx *f = *state;
    vfu_client_t *c = connect_raw(f);
    static const char doc[] = "{\"capabilities\":{\"max_msg_fds\":1024}}";
    struct vfu_client_caps got;

    assert_int_equal(vfu_client_negotiate_raw(c, 0, 0, doc, sizeof(doc), &got),
                     0);
    assert_int_equal(got.max_msg_fds, 8);
    vfu_client_close(c);
}

static void
test_minor_is_min(void **state)
{
    struct fx *f = *state;
    vfu_client_t *c = connect_raw(f);
    struct vfu_client_caps got;

    assert_int_equal(vfu_client_negotiate_raw(c, 0, 7, qemu_hello,
                                              sizeof(qemu_hello), &got), 0);
    assert_int_equal(got.major, 0);
    assert_true(got.minor <= 7);
    assert_int_equal(got.minor, 1);   /* the server speaks 0.1 */
    vfu_client_close(c);
}

static void
expect_rejected(struct fx *f, uint16_t major, const void *data, size_t len)
{
    vfu_client_t *c = connect_raw(f);

    errno = 0;
    assert_int_equal(vfu_client_negotiate_raw(c, major, 0, data, len, NULL), -1);
    /* Either an error reply, or the connection closed (spec allows both). */
    assert_true(errno == EINVAL || errno == ENOTSUP || errno == ENOTCONN);
    vfu_client_close(c);
    assert_fresh_client_ok(f);
}

static void
test_major_mismatch(void **state)
{
    expect_rejected(*state, 1, qemu_hello, sizeof(qemu_hello));
}

/* Returns true if the server refused the document with EINVAL. */
static bool
refused_einval(struct fx *f, const void *data, size_t len)
{
    vfu_client_t *c = connect_raw(f);

    errno = 0;
    int rc = vfu_client_negotiate_raw(c, 0, 0, data, len, NULL);
    int err = errno;
    vfu_client_close(c);
    assert_fresh_client_ok(f);
    if (rc != -1 || err != EINVAL) {
        print_error("VERSION with \"%.*s\": rc %d errno %d\n", (int)len,
                    (const char *)data, rc, err);
        return false;
    }
    return true;
}

static void
expect_einval(struct fx *f, const void *data, size_t len)
{
    vfu_client_t *c = connect_raw(f);

    errno = 0;
    int rc = vfu_client_negotiate_raw(c, 0, 0, data, len, NULL);
    int err = errno;
    vfu_client_close(c);
    if (rc != -1 || err != EINVAL) {
        fail_msg("VERSION with \"%.*s\": rc %d errno %d", (int)len,
                 (const char *)data, rc, err);
    }
    assert_fresh_client_ok(f);
}

static void
test_bad_json(void **state)
{
    static const char *docs[] = {
        "{",                                            /* truncated */
        "not json",
        "[1,2,3]",                                      /* not an object */
        "{\"capabilities\":5}",                         /* wrong type */
        "{\"capabilities\":{\"max_msg_fds\":\"16\"}}",
        "{\"capabilities\":{\"max_msg_fds\":-1}}",
        "{\"capabilities\":{\"max_msg_fds\":1025}}",  /* above 1024 */
        "{\"capabilities\":{\"max_data_xfer_size\":true}}",
        "{\"capabilities\":{\"pgsizes\":1.5}}",
        "{\"capabilities\":{\"migration\":7}}",
        "{\"capabilities\":{\"migration\":{\"pgsize\":\"x\"}}}",
        "{\"capabilities\":{\"write_multiple\":1}}",
        "{\"capabilities\":{\"max_dma_maps\":null}}",
        "{} trailing",
    };

    int bad = 0;

    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        bad += !refused_einval(*state, docs[i], strlen(docs[i]) + 1);
    }
    assert_int_equal(bad, 0);
}

static void
test_json_not_terminated(void **state)
{
    /* The NUL is missing: the document runs to the end of the payload. */
    expect_einval(*state, "{}", 2);
    /* Bytes after the NUL. */
    expect_einval(*state, "{}\0xx", 5);
}

static void
test_truncated_payload(void **state)
{
    struct fx *f = *state;
    vfu_client_t *c = connect_raw(f);
    uint16_t major = 0;
    size_t size = 0;

    /* Two bytes: not even major and minor. */
    errno = 0;
    assert_int_equal(vfu_client_call(c, VFIO_USER_VERSION, &major,
                                     sizeof(major), NULL, 0, NULL, &size,
                                     NULL, NULL), -1);
    assert_true(errno == EINVAL || errno == ENOTCONN);
    vfu_client_close(c);
    assert_fresh_client_ok(f);
}

static void
test_command_before_version(void **state)
{
    struct fx *f = *state;
    vfu_client_t *c = connect_raw(f);
    struct vfio_user_device_info info;

    errno = 0;
    assert_int_equal(vfu_client_device_get_info(c, &info), -1);
    assert_true(errno == EINVAL || errno == ENOTCONN);
    vfu_client_close(c);
    assert_fresh_client_ok(f);
}

static void
test_version_twice(void **state)
{
    struct fx *f = *state;
    vfu_client_t *c = harness_connect(f->srv);

    /* A second VERSION on a negotiated session is refused. */
    errno = 0;
    assert_int_equal(vfu_client_negotiate(c, NULL, NULL), -1);
    assert_true(errno == EINVAL || errno == ENOTCONN);
    vfu_client_close(c);
    assert_fresh_client_ok(f);
}

static void
test_small_caps_respected(void **state)
{
    struct fx *f = *state;
    vfu_client_t *c = connect_raw(f);
    struct vfu_client_caps caps, got;

    vfu_client_default_caps(&caps);
    caps.max_data_xfer_size = 4096;
    caps.has_migration = false;
    assert_int_equal(vfu_client_negotiate(c, &caps, &got), 0);
    /* Reads bigger than our max are split; the data still arrives whole. */
    uint8_t *buf = malloc(3 * 4096 + 5);
    assert_non_null(buf);
    for (size_t i = 0; i < 3 * 4096 + 5; i++) {
        buf[i] = (uint8_t)(i * 7);
    }
    assert_int_equal(vfu_client_region_write(c, VFU_PCI_DEV_BAR2_REGION_IDX,
                                             100, buf, 3 * 4096 + 5), 0);
    memset(buf, 0, 3 * 4096 + 5);
    assert_int_equal(vfu_client_region_read(c, VFU_PCI_DEV_BAR2_REGION_IDX,
                                            100, buf, 3 * 4096 + 5), 0);
    for (size_t i = 0; i < 3 * 4096 + 5; i++) {
        assert_int_equal(buf[i], (uint8_t)(i * 7));
    }
    free(buf);
    vfu_client_close(c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_qemu_hello, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_negotiate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_fds_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_minor_is_min, setup, teardown),
        cmocka_unit_test_setup_teardown(test_major_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_not_terminated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_payload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_command_before_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_version_twice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_small_caps_respected, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
