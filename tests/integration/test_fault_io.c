/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * Interrupted and partial I/O: a signal handler installed without
 * SA_RESTART firing at the server thread all through a session (its
 * recvmsg/sendmsg/epoll_wait see EINTR), and a client that reads a 1 MiB
 * reply a few KiB at a time with a tiny receive buffer (the server's
 * sendmsg is partial or EAGAIN). Every answer must still be complete and
 * right.
 */

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define BIG (1u << 20)

static void
on_signal(int sig)
{
    (void)sig;
}

struct killer {
    pthread_t target;
    int stop;                       /* atomic */
    unsigned sent;
};

static void
get_thread(vfu_ctx_t *ctx, void *arg)
{
    *(pthread_t *)arg = pthread_self();
}

static void *
kill_loop(void *arg)
{
    struct killer *k = arg;

    while (!__atomic_load_n(&k->stop, __ATOMIC_ACQUIRE)) {
        pthread_kill(k->target, SIGUSR1);
        k->sent++;
        usleep(200);
    }
    return NULL;
}

static void
fill(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        p[i] = (uint8_t)(i * 31 + seed);
    }
}

static void
test_signals(void **state)
{
    struct harness_fixture *fx = *state;
    struct sigaction sa = { .sa_handler = on_signal }, old;
    struct killer k = { 0 };
    pthread_t t;
    uint8_t *out = malloc(BIG), *in = malloc(BIG);

    assert_non_null(out);
    assert_non_null(in);
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;                /* no SA_RESTART: calls see EINTR */
    assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
    assert_int_equal(harness_server_exec(fx->srv, get_thread, &k.target), 0);
    assert_int_equal(pthread_create(&t, NULL, kill_loop, &k), 0);

    for (unsigned i = 0; i < 40; i++) {
        size_t n = i % 4 == 0 ? BIG : 4 + (i * 4093) % 65536;
        uint32_t v = i, back;

        fill(out, n, i);
        assert_int_equal(vfu_client_region_write(fx->c, VFU_PCI_DEV_BAR2_REGION_IDX,
                                                 0, out, n), 0);
        memset(in, 0, n);
        assert_int_equal(vfu_client_region_read(fx->c, VFU_PCI_DEV_BAR2_REGION_IDX,
                                                0, in, n), 0);
        assert_memory_equal(in, out, n);
        assert_int_equal(vfu_client_region_write(fx->c, 0, 8, &v, 4), 0);
        assert_int_equal(vfu_client_region_read(fx->c, 0, 8, &back, 4), 0);
        assert_int_equal(back, v);
    }
    /* A new client is served too, under fire. */
    vfu_client_close(fx->c);
    fx->c = harness_connect(fx->srv);
    assert_int_equal(vfu_client_region_read(fx->c, VFU_PCI_DEV_BAR2_REGION_IDX,
                                            0, in, 4096), 0);
    assert_memory_equal(in, out, 4096);

    __atomic_store_n(&k.stop, 1, __ATOMIC_RELEASE);
    pthread_join(t, NULL);
    print_message("%u signals sent; server's last run error: %d\n", k.sent,
                  harness_server_last_error(fx->srv));
    assert_true(k.sent > 10);
    sigaction(SIGUSR1, &old, NULL);
    free(out);
    free(in);
}

/* Read exactly n bytes a few at a time, pausing now and then. */
static void
slow_read(int fd, uint8_t *p, size_t n)
{
    size_t done = 0;
    unsigned reads = 0;

    while (done < n) {
        size_t want = n - done < 3000 ? n - done : 3000;
        ssize_t r = read(fd, p + done, want);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        assert_true(r > 0);
        done += (size_t)r;
        if (++reads % 32 == 0) {
            harness_sleep_ms(1);
        }
    }
}

static void
test_slow_reader(void **state)
{
    struct harness_fixture *fx = *state;
    int fd = vfu_client_fd(fx->c);
    int small = 1;
    uint8_t *out = malloc(BIG), *in = malloc(BIG);
    struct { uint64_t off; uint32_t region, count; } rd = {
        0, VFU_PCI_DEV_BAR2_REGION_IDX, BIG };
    struct vfio_user_header h = {
        .cmd = VFIO_USER_REGION_READ,
        .msg_size = sizeof(h) + sizeof(rd),
    }, rh;
    uint8_t req[sizeof(h) + sizeof(rd)];

    assert_non_null(out);
    assert_non_null(in);
    fill(out, BIG, 7);
    assert_int_equal(vfu_client_region_write(fx->c, VFU_PCI_DEV_BAR2_REGION_IDX,
                                             0, out, BIG), 0);
    /* The kernel rounds this up to its minimum. */
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small,
                                sizeof(small)), 0);

    for (int round = 0; round < 3; round++) {
        h.msg_id = vfu_client_next_msg_id(fx->c);
        memcpy(req, &h, sizeof(h));
        memcpy(req + sizeof(h), &rd, sizeof(rd));
        assert_int_equal(vfu_client_send_raw(fx->c, req, sizeof(req), NULL, 0), 0);
        /* Let the server fill the socket and block (or spin on EAGAIN). */
        harness_sleep_ms(20);
        slow_read(fd, (uint8_t *)&rh, sizeof(rh));
        assert_int_equal(rh.msg_id, h.msg_id);
        assert_false(rh.flags & VFIO_USER_F_ERROR);
        assert_int_equal(rh.msg_size, sizeof(rh) + sizeof(rd) + BIG);
        slow_read(fd, (uint8_t *)&rd, sizeof(rd));
        assert_int_equal(rd.count, BIG);
        memset(in, 0, BIG);
        slow_read(fd, in, BIG);
        assert_memory_equal(in, out, BIG);
    }
    /* The session goes on normally after. */
    uint32_t v;
    assert_int_equal(vfu_client_region_read(fx->c, 0, 0, &v, 4), 0);
    free(out);
    free(in);
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, harness_fixture_setup, \
                                              harness_fixture_teardown)
    const struct CMUnitTest tests[] = {
        T(test_signals), T(test_slow_reader),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
