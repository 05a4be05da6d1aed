/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * A blocking vfu_run_ctx() interrupted by a signal (handler without
 * SA_RESTART) returns -1/EINTR so the program can act on it, as
 * libvfio-user's does, and the client stays connected.
 */

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "libvfio-user.h"
#include "vfu-client.h"

struct loop {
    vfu_ctx_t *ctx;
    int eintr;          /* run_ctx calls that returned EINTR */
    int last_errno;
    volatile int stop;
};

static void
on_signal(int sig)
{
}

static ssize_t
bar0(vfu_ctx_t *ctx, char *buf, size_t count, loff_t off, bool is_write)
{
    if (!is_write) {
        memset(buf, 0x11, count);
    }
    return (ssize_t)count;
}

static void *
serve(void *arg)
{
    struct loop *l = arg;

    if (vfu_attach_ctx(l->ctx) < 0) {
        l->last_errno = errno;
        return NULL;
    }
    while (!l->stop) {
        if (vfu_run_ctx(l->ctx) < 0) {
            l->last_errno = errno;
            if (errno != EINTR) {
                break;
            }
            __atomic_add_fetch(&l->eintr, 1, __ATOMIC_SEQ_CST);
        }
    }
    return NULL;
}

static void
test_blocking_run_returns_eintr(void **state)
{
    char dir[] = "/tmp/vfu-eintr-XXXXXX", path[64];
    struct sigaction sa = { .sa_handler = on_signal };   /* no SA_RESTART */
    struct vfu_client_caps caps;
    struct loop l = { 0 };
    pthread_t t;

    sigaction(SIGUSR1, &sa, NULL);
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/s", dir);
    l.ctx = vfu_create_ctx(VFU_TRANS_SOCK, path, 0, NULL, VFU_DEV_TYPE_PCI);
    assert_non_null(l.ctx);
    assert_int_equal(vfu_pci_init(l.ctx, VFU_PCI_TYPE_CONVENTIONAL, 0, 0), 0);
    assert_int_equal(vfu_setup_region(l.ctx, 0, 4096, bar0,
                                      VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM,
                                      NULL, 0, -1, 0), 0);
    assert_int_equal(vfu_realize_ctx(l.ctx), 0);
    pthread_create(&t, NULL, serve, &l);

    vfu_client_t *c = vfu_client_connect(path);
    assert_non_null(c);
    vfu_client_default_caps(&caps);
    assert_int_equal(vfu_client_negotiate(c, &caps, NULL), 0);

    /* The loop is now blocked waiting for the idle client. */
    for (int i = 0; i < 50 && __atomic_load_n(&l.eintr, __ATOMIC_SEQ_CST) == 0; i++) {
        pthread_kill(t, SIGUSR1);
        usleep(20000);
    }
    assert_true(__atomic_load_n(&l.eintr, __ATOMIC_SEQ_CST) >= 1);

    uint32_t v = 0;
    assert_int_equal(vfu_client_region_read(c, 0, 0, &v, 4), 0);
    assert_int_equal(v, 0x11111111);

    l.stop = 1;
    vfu_client_close(c);     /* the loop sees ENOTCONN and ends */
    pthread_join(t, NULL);
    assert_int_equal(l.last_errno, ENOTCONN);
    vfu_destroy_ctx(l.ctx);
    rmdir(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blocking_run_returns_eintr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
