/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/* 1,000 connect/negotiate/disconnect cycles without fd or memory growth. */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

static void
test_cycles(void **state)
{
    struct harness_dev dev;
    struct harness_server *s;
    int mine, theirs;

    assert_int_equal(harness_dev_init(&dev), 0);
    s = harness_server_start_process(harness_dev_setup, &dev);
    assert_non_null(s);
    mine = harness_fd_count(0);
    theirs = harness_fd_count(harness_server_pid(s));
    for (int i = 0; i < 1000; i++) {
        vfu_client_t *c = harness_connect(s);
        if (i % 2 == 0) {
            /* Leave state behind that the server must drop: an eventfd. */
            int efd = harness_eventfd();
            assert_int_equal(vfu_client_set_irqs(c, VFIO_IRQ_SET_DATA_EVENTFD |
                                                 VFIO_IRQ_SET_ACTION_TRIGGER,
                                                 VFU_DEV_INTX_IRQ, 0, 1, &efd,
                                                 1, NULL, 0), 0);
            close(efd);
        }
        vfu_client_close(c);
    }
    assert_int_equal(harness_fd_count(0), mine);
    assert_int_equal(harness_fd_count_settle(harness_server_pid(s), theirs,
                                             2000), theirs);
    assert_int_equal(harness_server_stop(s), 0);
    harness_dev_fini(&dev);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cycles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
