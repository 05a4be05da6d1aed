/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * A client that goes away at every point of every command: after the
 * header, in the middle of the payload (with its fds in flight), and right
 * after a whole request without reading the reply. And one that sends each
 * request a byte per write. The server, in a child process, must drop the
 * client without crashing, close every fd it was given, and serve the next
 * client.
 */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define WAIT_MS 3000
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* One request of each command, valid for the harness device. */
struct req {
    uint16_t cmd;
    uint8_t payload[64];
    size_t len;
    int nr_fds;             /* memfd for DMA_MAP, eventfd for SET_IRQS */
};

static size_t
put(uint8_t *p, size_t off, const void *v, size_t n)
{
    memcpy(p + off, v, n);
    return off + n;
}

static void
make_requests(struct req *r, size_t *n)
{
    size_t i = 0;
    uint32_t u32[6];
    uint64_t u64[3];

    memset(r, 0, sizeof(*r) * 16);

    r[i].cmd = VFIO_USER_VERSION;
    {
        static const char json[] = "{\"capabilities\":{\"max_msg_fds\":8}}";
        uint16_t v[2] = { 0, 0 };
        r[i].len = put(r[i].payload, put(r[i].payload, 0, v, 4), json,
                       sizeof(json));
    }
    i++;

    r[i].cmd = VFIO_USER_DMA_MAP;
    u32[0] = 32; u32[1] = 3;
    u64[0] = 0; u64[1] = 0x100000; u64[2] = 0x1000;
    r[i].len = put(r[i].payload, put(r[i].payload, 0, u32, 8), u64, 24);
    r[i].nr_fds = 1;
    i++;

    r[i].cmd = VFIO_USER_DMA_UNMAP;
    u32[0] = 24; u32[1] = 2;
    u64[0] = 0; u64[1] = 0;
    r[i].len = put(r[i].payload, put(r[i].payload, 0, u32, 8), u64, 16);
    i++;

    r[i].cmd = VFIO_USER_DEVICE_GET_INFO;
    u32[0] = 16; u32[1] = 0; u32[2] = 0; u32[3] = 0;
    r[i].len = put(r[i].payload, 0, u32, 16);
    i++;

    r[i].cmd = VFIO_USER_DEVICE_GET_REGION_INFO;
    memset(u32, 0, sizeof(u32));
    u32[0] = 32; u32[2] = 1;
    r[i].len = put(r[i].payload, put(r[i].payload, 0, u32, 16), u64 + 1, 16);
    i++;

    r[i].cmd = VFIO_USER_DEVICE_GET_REGION_IO_FDS;
    u32[0] = 4096; u32[1] = 0; u32[2] = 0; u32[3] = 0;
    r[i].len = put(r[i].payload, 0, u32, 16);
    i++;

    r[i].cmd = VFIO_USER_DEVICE_GET_IRQ_INFO;
    u32[0] = 16; u32[1] = 0; u32[2] = VFU_DEV_MSIX_IRQ; u32[3] = 0;
    r[i].len = put(r[i].payload, 0, u32, 16);
    i++;

    r[i].cmd = VFIO_USER_DEVICE_SET_IRQS;
    u32[0] = 20;
    u32[1] = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
    u32[2] = VFU_DEV_MSIX_IRQ; u32[3] = 1; u32[4] = 1;
    r[i].len = put(r[i].payload, 0, u32, 20);
    r[i].nr_fds = 1;
    i++;

    r[i].cmd = VFIO_USER_REGION_READ;
    u64[0] = 0; u32[0] = 0; u32[1] = 4;
    r[i].len = put(r[i].payload, put(r[i].payload, 0, u64, 8), u32, 8);
    i++;

    r[i].cmd = VFIO_USER_REGION_WRITE;
    u64[0] = 8; u32[0] = 0; u32[1] = 4; u32[2] = 0x11223344;
    r[i].len = put(r[i].payload, put(r[i].payload, 0, u64, 8), u32, 12);
    i++;

    r[i].cmd = VFIO_USER_DEVICE_RESET;
    r[i].len = 0;
    i++;

    r[i].cmd = VFIO_USER_REGION_WRITE_MULTI;
    {
        uint64_t count = 1, off = 12, data = 0x55;
        uint32_t rc[2] = { 0, 1 };
        size_t o = put(r[i].payload, 0, &count, 8);
        o = put(r[i].payload, o, &off, 8);
        o = put(r[i].payload, o, rc, 8);
        r[i].len = put(r[i].payload, o, &data, 8);
    }
    i++;

    r[i].cmd = VFIO_USER_DEVICE_FEATURE;
    {
        /* DMA logging start over [0x100000, +0x1000) at 4 KiB pages */
        uint32_t h[2] = { 16 + 16 + 16, 0x20000 | 6 };
        uint64_t pg = 4096;
        uint32_t nr[2] = { 1, 0 };
        uint64_t range[2] = { 0x100000, 0x1000 };
        size_t o = put(r[i].payload, 0, h, 8);
        o = put(r[i].payload, o, &pg, 8);
        o = put(r[i].payload, o, nr, 8);
        r[i].len = put(r[i].payload, o, range, 16);
    }
    i++;

    r[i].cmd = VFIO_USER_MIG_DATA_READ;
    u32[0] = 8 + 64; u32[1] = 64;
    r[i].len = put(r[i].payload, 0, u32, 8);
    i++;

    r[i].cmd = VFIO_USER_MIG_DATA_WRITE;
    u32[0] = 8 + 8; u32[1] = 8;
    r[i].len = put(r[i].payload, put(r[i].payload, 0, u32, 8), u64, 8);
    i++;

    *n = i;
}

static void
assert_healthy(struct harness_fixture *f)
{
    vfu_client_t *c;
    uint32_t v;

    harness_assert_fd_count(f->pid, f->base_fds, WAIT_MS);
    c = harness_connect(f->srv);
    assert_int_equal(vfu_client_region_read(c, 0, 0, &v, 4), 0);
    vfu_client_close(c);
    harness_assert_fd_count(f->pid, f->base_fds, WAIT_MS);
}

static void
fds_for(const struct req *r, int *fds)
{
    for (int i = 0; i < r->nr_fds; i++) {
        fds[i] = r->cmd == VFIO_USER_DMA_MAP ? harness_memfd(0x1000)
                                              : harness_eventfd();
        assert_true(fds[i] >= 0);
    }
}

/* Send len bytes of buf as one write, carrying fresh fds of r's kind. */
static void
send_with_fds(vfu_client_t *c, const struct req *r, const uint8_t *buf,
              size_t len)
{
    int fds[2];

    fds_for(r, fds);
    assert_int_equal(vfu_client_send_raw(c, buf, len, fds,
                                         (uint32_t)r->nr_fds), 0);
    harness_close_fds(fds, r->nr_fds);
}

/* Cut every request after the header, in the middle of the payload (fds
 * already sent), and after the last byte. */
static void
test_cut_everywhere(void **state)
{
    struct harness_fixture *f = *state;
    struct req reqs[16];
    size_t n;

    make_requests(reqs, &n);
    for (size_t i = 0; i < n; i++) {
        uint8_t buf[128];
        size_t total = harness_msg(buf, 7, reqs[i].cmd, reqs[i].payload,
                                   reqs[i].len);
        size_t cuts[] = { 1, sizeof(struct vfio_user_header),
                          sizeof(struct vfio_user_header) + reqs[i].len / 2,
                          total };

        for (size_t k = 0; k < ARRAY_SIZE(cuts); k++) {
            vfu_client_t *c = harness_connect(f->srv);

            send_with_fds(c, &reqs[i], buf, cuts[k]);
            vfu_client_close(c);
        }
        assert_healthy(f);
    }
}

/* Two whole requests back to back, then gone before either reply is read:
 * the server's replies meet a closed socket (EPIPE, not SIGPIPE). */
static void
test_gone_before_reply(void **state)
{
    struct harness_fixture *f = *state;
    struct req reqs[16];
    size_t n;

    make_requests(reqs, &n);
    for (size_t i = 0; i < n; i++) {
        uint8_t buf[256];
        size_t len = harness_msg(buf, 9, reqs[i].cmd, reqs[i].payload,
                                 reqs[i].len);
        vfu_client_t *c = harness_connect(f->srv);

        len += harness_msg(buf + len, 11, reqs[i].cmd, reqs[i].payload,
                           reqs[i].len);
        send_with_fds(c, &reqs[i], buf, len);
        shutdown(vfu_client_fd(c), SHUT_RDWR);
        vfu_client_close(c);
    }
    assert_healthy(f);
}

/* Every request a byte per write, with pauses: answered as if whole. */
static void
test_byte_per_write(void **state)
{
    struct harness_fixture *f = *state;
    vfu_client_t *c = harness_connect(f->srv);
    struct req reqs[16];
    size_t n;

    make_requests(reqs, &n);
    for (size_t i = 0; i < n; i++) {
        uint8_t buf[128], reply[4096];
        uint16_t id = vfu_client_next_msg_id(c);
        size_t total = harness_msg(buf, id, reqs[i].cmd, reqs[i].payload,
                                   reqs[i].len);
        size_t size = sizeof(reply);
        struct vfio_user_header h;
        int fds[2];

        if (reqs[i].cmd == VFIO_USER_VERSION) {
            continue;           /* a second VERSION ends the session */
        }
        fds_for(&reqs[i], fds);
        for (size_t b = 0; b < total; b++) {
            /* The fds ride with the first byte, as a sendmsg() puts them on
             * its first skb. */
            assert_int_equal(vfu_client_send_raw(c, buf + b, 1,
                                                 b == 0 ? fds : NULL,
                                                 b == 0 ? (uint32_t)reqs[i].nr_fds : 0),
                             0);
            if (b % 8 == 0) {
                harness_sleep_ms(1);
            }
        }
        harness_close_fds(fds, reqs[i].nr_fds);
        assert_int_equal(vfu_client_recv_raw(c, &h, reply, &size, NULL, NULL,
                                             WAIT_MS), 0);
        assert_int_equal(h.msg_id, id);
        assert_int_equal(h.cmd, reqs[i].cmd);
        assert_true(h.flags & VFIO_USER_F_TYPE_REPLY);
        /* The harness device has no migration: MIG_DATA_* fail; the rest
         * succeed. */
        if (reqs[i].cmd == VFIO_USER_MIG_DATA_READ ||
            reqs[i].cmd == VFIO_USER_MIG_DATA_WRITE) {
            assert_true(h.flags & VFIO_USER_F_ERROR);
        } else {
            assert_false(h.flags & VFIO_USER_F_ERROR);
        }
    }
    vfu_client_close(c);
    assert_healthy(f);
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, \
        harness_fixture_setup_process_noclient, harness_fixture_teardown)
    const struct CMUnitTest tests[] = {
        T(test_cut_everywhere), T(test_gone_before_reply), T(test_byte_per_write),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
