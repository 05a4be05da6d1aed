/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * Bad fds from the client: DMA_MAP with an fd of the wrong type, one
 * pointing at a file too small for the range (accepted: see dma_table.c),
 * one opened read-only for a writable map, and fds on commands that take
 * none. Each gets an error reply, the server (a child process) keeps none
 * of them, and the device works after.
 */

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define WAIT_MS 3000
#define RW (VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_WRITE)

/* DMA_MAP [iova, +size) with fd; returns the reply's errno (0: success). */
static int
map_err(struct harness_fixture *f, uint64_t iova, uint64_t size, uint32_t flags, int fd,
        uint64_t offset)
{
    struct { uint32_t argsz, flags; uint64_t offset, addr, size; } m = {
        sizeof(m), flags, offset, iova, size };

    errno = 0;
    return vfu_client_call(f->c, VFIO_USER_DMA_MAP, &m, sizeof(m),
                           fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0, NULL, NULL,
                           NULL, NULL) == 0 ? 0 : errno;
}

static void
assert_clean(struct harness_fixture *f)
{
    uint32_t v;

    assert_int_equal(vfu_client_region_read(f->c, 0, 0, &v, 4), 0);
    /* connected: base + the connection's socket */
    harness_assert_fd_count(f->pid, f->base_fds + 1, WAIT_MS);
}

static void
test_dma_fds(void **state)
{
    struct harness_fixture *f = *state;
    int sv[2], pfd[2];
    char path[] = "/tmp/vfu-fds-XXXXXX";
    int efd = harness_eventfd(), mfd = harness_memfd(0x2000), ro;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(pipe(pfd), 0);
    ro = mkstemp(path);
    assert_true(ro >= 0);
    assert_int_equal(ftruncate(ro, 0x2000), 0);
    close(ro);
    ro = open(path, O_RDONLY);
    unlink(path);
    assert_true(ro >= 0);

    /* Wrong types: no mmap-able memory behind them. */
    assert_int_not_equal(map_err(f, 0x100000, 0x1000, RW, efd, 0), 0);
    assert_int_not_equal(map_err(f, 0x100000, 0x1000, RW, sv[0], 0), 0);
    assert_int_not_equal(map_err(f, 0x100000, 0x1000, RW, pfd[0], 0), 0);
    assert_int_equal(map_err(f, 0x100000, 0x1000, RW, pfd[0], 0), EINVAL);
    /*
     * A file too small for the range, or an offset past its end: accepted,
     * with private memory past the end (and no fd kept). Offsets that
     * wrap or exceed off_t: refused.
     */
    assert_int_equal(map_err(f, 0x100000, 0x4000, RW, mfd, 0), 0);
    assert_int_equal(map_err(f, 0x200000, 0x1000, RW, mfd, 0x2000), 0);
    assert_int_equal(vfu_client_dma_unmap(f->c, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL), 0);
    assert_int_equal(map_err(f, 0x100000, 0x1000, RW, mfd, UINT64_MAX - 0xfff), EINVAL);
    assert_int_equal(map_err(f, 0x100000, 0x1000, RW, mfd, 1ull << 63), EINVAL);
    /* Read-only file, writable map: refused; read-only map: fine. */
    assert_int_not_equal(map_err(f, 0x100000, 0x1000, RW, ro, 0), 0);
    assert_int_equal(map_err(f, 0x100000, 0x1000, VFIO_USER_F_DMA_REGION_READ,
                             ro, 0), 0);
    assert_int_equal(vfu_client_dma_unmap(f->c, 0x100000, 0x1000, 0), 0);
    /* Two fds for one map. */
    {
        struct { uint32_t argsz, flags; uint64_t offset, addr, size; } m = {
            32, RW, 0, 0x100000, 0x1000 };
        int two[2] = { mfd, mfd };
        assert_int_equal(vfu_client_call(f->c, VFIO_USER_DMA_MAP, &m, sizeof(m),
                                         two, 2, NULL, NULL, NULL, NULL), -1);
        assert_int_equal(errno, EINVAL);
    }
    /* And the right one works. */
    assert_int_equal(map_err(f, 0x100000, 0x2000, RW, mfd, 0), 0);
    assert_int_equal(vfu_client_dma_unmap(f->c, 0x100000, 0x2000, 0), 0);

    close(efd);
    close(mfd);
    close(ro);
    close(sv[0]);
    close(sv[1]);
    close(pfd[0]);
    close(pfd[1]);
    assert_clean(f);
}

/* Commands that take no fds: ignored or refused, the fds closed either
 * way (the spec does not say which). */
static void
test_stray_fds(void **state)
{
    struct harness_fixture *f = *state;
    int fds[3] = { harness_eventfd(), harness_memfd(4096), harness_eventfd() };
    struct { uint32_t argsz, flags, index, count; } info = { 16, 0, 0, 0 };
    struct { uint64_t off; uint32_t region, count; } rd = { 0, 0, 4 };
    char reply[64];
    size_t size;

    size = sizeof(reply);
    if (vfu_client_call(f->c, VFIO_USER_DEVICE_GET_INFO, &info, sizeof(info),
                        fds, 3, reply, &size, NULL, NULL) < 0) {
        assert_int_equal(errno, EINVAL);
    }
    size = sizeof(reply);
    if (vfu_client_call(f->c, VFIO_USER_REGION_READ, &rd, sizeof(rd), fds, 1,
                        reply, &size, NULL, NULL) < 0) {
        assert_int_equal(errno, EINVAL);
    }
    for (int i = 0; i < 20; i++) {
        size = sizeof(reply);
        vfu_client_call(f->c, VFIO_USER_REGION_READ, &rd, sizeof(rd), fds, 3,
                        reply, &size, NULL, NULL);
    }
    /* SET_IRQS with more fds than vectors named. */
    {
        struct { uint32_t argsz, flags, index, start, count; } irq = {
            20, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
            VFU_DEV_MSIX_IRQ, 0, 1 };
        assert_int_equal(vfu_client_call(f->c, VFIO_USER_DEVICE_SET_IRQS, &irq,
                                         sizeof(irq), fds, 3, NULL, NULL, NULL,
                                         NULL), -1);
        assert_int_equal(errno, EINVAL);
    }
    harness_close_fds(fds, 3);
    assert_clean(f);
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, \
        harness_fixture_setup_process, harness_fixture_teardown)
    const struct CMUnitTest tests[] = {
        T(test_dma_fds), T(test_stray_fds),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
