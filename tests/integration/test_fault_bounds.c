/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * Resource bounds: hostile requests that ask the server for more than the
 * README's limits table allows are refused with the table's errno, and the
 * server process's peak memory (VmHWM) and fd count stay where they were.
 */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define WAIT_MS 3000

/* A field of /proc/pid/status in KiB, or -1. */
static long
status_kib(pid_t pid, const char *field)
{
    char path[64], line[256];
    size_t n = strlen(field);
    long v = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, field, n) == 0 && line[n] == ':') {
            v = strtol(line + n + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

/* The harness device in a child process, allowing 100 DMA maps. */
static int
setup(void **state)
{
    struct harness_fixture *f;
    struct vfu_client_caps caps;
    static char warm[1 << 20];

    harness_max_dma_maps = 100;
    if (harness_fixture_setup_process_noclient(state) < 0) {
        return -1;
    }
    f = *state;
    f->c = vfu_client_connect(harness_server_path(f->srv));
    vfu_client_default_caps(&caps);
    if (f->c == NULL || vfu_client_negotiate(f->c, &caps, NULL) < 0) {
        return -1;
    }
    /* Warm up: the largest legitimate reply sizes the reply buffer. */
    if (vfu_client_region_read(f->c, VFU_PCI_DEV_BAR2_REGION_IDX, 0, warm,
                               sizeof(warm)) < 0) {
        return -1;
    }
    return 0;
}

static void
test_hostile(void **state)
{
    struct harness_fixture *f = *state;
    long hwm0 = status_kib(f->pid, "VmHWM");
    long peak0 = status_kib(f->pid, "VmPeak");

    assert_true(hwm0 > 0 && peak0 > 0);

    /* A request declaring 64 MiB, and sending 8 MiB of it: EINVAL, and the
     * payload is dropped as it comes, not buffered. */
    {
        size_t junk = 8u << 20, len;
        char *buf = calloc(1, sizeof(struct vfio_user_header) + junk);
        uint16_t id = vfu_client_next_msg_id(f->c);
        struct vfio_user_header rh;
        size_t rsize = 0;

        assert_non_null(buf);
        /* The payload is the calloc's zeros. */
        len = harness_msg(buf, id, VFIO_USER_REGION_WRITE, NULL, junk);
        assert_int_equal(vfu_client_send_raw(f->c, buf, len, NULL, 0), 0);
        free(buf);
        assert_int_equal(vfu_client_recv_raw(f->c, &rh, NULL, &rsize, NULL,
                                             NULL, WAIT_MS), 0);
        assert_int_equal(rh.msg_id, id);
        assert_true(rh.flags & VFIO_USER_F_ERROR);
        assert_int_equal(rh.error_no, EINVAL);
    }

    /* REGION_READ of 64 MiB: EINVAL before any buffer is sized for it. */
    {
        struct { uint64_t off; uint32_t region, count; } rd = {
            0, VFU_PCI_DEV_BAR2_REGION_IDX, 64u << 20 };
        assert_int_equal(harness_call_errno(f->c, VFIO_USER_REGION_READ, &rd,
                                            sizeof(rd), NULL, 0), EINVAL);
        rd.count = UINT32_MAX;
        assert_int_equal(harness_call_errno(f->c, VFIO_USER_REGION_READ, &rd,
                                            sizeof(rd), NULL, 0), EINVAL);
    }

    /* WRITE_MULTI claiming 2^60 entries. */
    {
        uint64_t wm[4] = { 1ull << 60, 0, 0, 0 };
        assert_int_equal(harness_call_errno(f->c, VFIO_USER_REGION_WRITE_MULTI, wm,
                                            sizeof(wm), NULL, 0), EINVAL);
    }

    /* DMA logging whose bitmaps would exceed 256 MiB: 2^50 bytes at 4 KiB
     * pages need 32 GiB of bitmap. */
    {
        struct vfio_user_device_feature_dma_logging_range r = {
            .iova = 0, .length = 1ull << 50,
        };
        assert_int_equal(vfu_client_dma_logging_start(f->c, 4096, &r, 1), -1);
        assert_int_equal(errno, E2BIG);
    }

    /* More fds than max_msg_fds (16): EINVAL, all of them closed. */
    {
        int fds[40];
        struct { uint32_t argsz, flags, index, start, count; } irq = {
            20, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
            VFU_DEV_MSIX_IRQ, 0, 40 };
        assert_int_equal(harness_eventfds(fds, 40), 0);
        assert_int_equal(harness_call_errno(f->c, VFIO_USER_DEVICE_SET_IRQS,
                                            &irq, sizeof(irq), fds, 40),
                         EINVAL);
        harness_close_fds(fds, 40);
    }

    /* IRQ vectors past the device's count (MSI-X has 4), and an index past
     * the IRQ types. */
    {
        struct { uint32_t argsz, flags, index, start, count; } irq = {
            20, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
            VFU_DEV_MSIX_IRQ, 2, 5 };
        assert_int_equal(harness_call_errno(f->c, VFIO_USER_DEVICE_SET_IRQS, &irq,
                                            sizeof(irq), NULL, 0), EINVAL);
        irq.start = UINT32_MAX;
        irq.count = 2;
        assert_int_equal(harness_call_errno(f->c, VFIO_USER_DEVICE_SET_IRQS, &irq,
                                            sizeof(irq), NULL, 0), EINVAL);
        irq.index = 1000;
        irq.start = 0;
        assert_int_equal(harness_call_errno(f->c, VFIO_USER_DEVICE_SET_IRQS, &irq,
                                            sizeof(irq), NULL, 0), EINVAL);
    }

    /* DMA maps past the device's max_regions (100): EINVAL. */
    {
        int i, rc = 0;
        for (i = 0; i < 200; i++) {
            rc = vfu_client_dma_map(f->c, 0x100000ull + 0x1000ull * i, 0x1000,
                                    VFIO_USER_F_DMA_REGION_READ, -1, 0, NULL);
            if (rc < 0) {
                break;
            }
        }
        assert_int_equal(rc, -1);
        assert_int_equal(errno, EINVAL);
        assert_int_equal(i, 100);
        assert_int_equal(vfu_client_dma_unmap(f->c, 0, 0,
                                              VFIO_DMA_UNMAP_FLAG_ALL), 0);
    }

    /* The device still answers, and nothing grew. */
    {
        uint32_t v;
        assert_int_equal(vfu_client_region_read(f->c, 0, 0, &v, 4), 0);
    }
    long hwm1 = status_kib(f->pid, "VmHWM");
    long peak1 = status_kib(f->pid, "VmPeak");
    print_message("server VmHWM %ld -> %ld KiB, VmPeak %ld -> %ld KiB\n",
                  hwm0, hwm1, peak0, peak1);
    assert_true(hwm1 - hwm0 < 4096);
    assert_true(peak1 - peak0 < 16384);
}

/* A VERSION with a 1 MiB JSON document: refused, nothing kept. */
static void
test_big_version(void **state)
{
    struct harness_fixture *f = *state;
    size_t n = 1u << 20;
    char *doc = malloc(n);
    vfu_client_t *c;
    long hwm0, hwm1;

    assert_non_null(doc);
    memset(doc, ' ', n);
    memcpy(doc, "{\"capabilities\":{", 17);
    memcpy(doc + n - 3, "}}", 2);
    doc[n - 1] = '\0';
    vfu_client_close(f->c);
    f->c = NULL;
    hwm0 = status_kib(f->pid, "VmHWM");
    c = vfu_client_connect(harness_server_path(f->srv));
    assert_non_null(c);
    assert_int_equal(vfu_client_negotiate_raw(c, 0, 0, doc, n, NULL), -1);
    assert_int_equal(errno, EINVAL);
    free(doc);
    vfu_client_close(c);
    harness_assert_fd_count(f->pid, f->base_fds, WAIT_MS);
    f->c = harness_connect(f->srv);
    hwm1 = status_kib(f->pid, "VmHWM");
    print_message("server VmHWM %ld -> %ld KiB\n", hwm0, hwm1);
    assert_true(hwm1 - hwm0 < 4096);
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, \
                                             harness_fixture_teardown)
    const struct CMUnitTest tests[] = {
        T(test_hostile), T(test_big_version),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
