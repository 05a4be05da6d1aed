/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * Soak: one client runs random valid and invalid operations against the
 * harness device and checks every answer against a model of the device:
 * BAR0's bytes, which DMA ranges are mapped, how many resets happened.
 * Reconnects now and then (the server drops the client's maps). Bounded by
 * an iteration count and by time (VFU_SOAK_SECONDS, default 20 s), and
 * reproducible from its seed (VFU_SOAK_SEED).
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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define ITERATIONS  100000
#define SLOTS       16              /* DMA ranges of 64 KiB at 1 MiB steps */
#define SLOT_SIZE   0x10000u
#define SLOT_IOVA(i) (0x100000ull * (1 + (i)))

struct model {
    uint8_t bar0[HARNESS_BAR0_SIZE];
    bool mapped[SLOTS];
    unsigned resets;
};

static uint64_t
rnd(uint64_t *s)
{
    /* xorshift64*: small, and the same everywhere for a given seed */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
test_soak(void **state)
{
    struct harness_fixture *fx = *state;
    struct model m;
    const char *env = getenv("VFU_SOAK_SEED");
    const char *secs = getenv("VFU_SOAK_SECONDS");
    uint64_t seed = env != NULL ? strtoull(env, NULL, 0) : 0x5eed5eedull;
    double limit = secs != NULL ? atof(secs) : 20.0, start = now_s();
    int memfd = harness_memfd(SLOTS * SLOT_SIZE);
    uint8_t *mem = mmap(NULL, SLOTS * SLOT_SIZE, PROT_READ | PROT_WRITE,
                        MAP_SHARED, memfd, 0);
    int base_fds = harness_fd_count(0);
    unsigned it, counts[10] = { 0 };

    print_message("soak seed %#llx\n", (unsigned long long)seed);
    assert_true(mem != MAP_FAILED);
    memset(&m, 0, sizeof(m));
    assert_int_equal(vfu_client_region_write(fx->c, 0, 0, m.bar0,
                                             sizeof(m.bar0)), 0);
    m.resets = __atomic_load_n(&fx->dev.reset_calls, __ATOMIC_ACQUIRE);

    for (it = 0; it < ITERATIONS && now_s() - start < limit; it++) {
        uint64_t r = rnd(&seed);
        unsigned op = r % 10;
        uint32_t off = (uint32_t)(r >> 8) % HARNESS_BAR0_SIZE;
        uint32_t len = 1 + (uint32_t)(r >> 24) % 64;
        uint8_t buf[128];

        counts[op]++;
        switch (op) {
        case 0:
        case 1:     /* write within BAR0 */
            if (off + len > HARNESS_BAR0_SIZE) {
                len = HARNESS_BAR0_SIZE - off;
            }
            for (uint32_t i = 0; i < len; i++) {
                buf[i] = (uint8_t)rnd(&seed);
            }
            assert_int_equal(vfu_client_region_write(fx->c, 0, off, buf, len), 0);
            memcpy(m.bar0 + off, buf, len);
            break;
        case 2:
        case 3:     /* read within BAR0 */
            if (off + len > HARNESS_BAR0_SIZE) {
                len = HARNESS_BAR0_SIZE - off;
            }
            assert_int_equal(vfu_client_region_read(fx->c, 0, off, buf, len), 0);
            assert_memory_equal(buf, m.bar0 + off, len);
            break;
        case 4:     /* access crossing the end: refused, nothing written */
            off = HARNESS_BAR0_SIZE - (uint32_t)(r >> 40) % 8;
            assert_int_equal(vfu_client_region_write(fx->c, 0, off, buf, 16), -1);
            assert_int_equal(errno, EINVAL);
            break;
        case 5: {   /* map a slot: EEXIST when it is mapped */
            unsigned s = (unsigned)(r >> 16) % SLOTS;
            int rc = vfu_client_dma_map(fx->c, SLOT_IOVA(s), SLOT_SIZE,
                                        VFIO_USER_F_DMA_REGION_READ |
                                        VFIO_USER_F_DMA_REGION_WRITE,
                                        memfd, (uint64_t)s * SLOT_SIZE,
                                        mem + (size_t)s * SLOT_SIZE);
            if (m.mapped[s]) {
                assert_int_equal(rc, -1);
                assert_int_equal(errno, EEXIST);
            } else {
                assert_int_equal(rc, 0);
                m.mapped[s] = true;
            }
            break;
        }
        case 6: {   /* unmap a slot: ENOENT when it is not mapped */
            unsigned s = (unsigned)(r >> 16) % SLOTS;
            int rc = vfu_client_dma_unmap(fx->c, SLOT_IOVA(s), SLOT_SIZE, 0);
            if (m.mapped[s]) {
                assert_int_equal(rc, 0);
                m.mapped[s] = false;
            } else {
                assert_int_equal(rc, -1);
            }
            break;
        }
        case 7:     /* an unknown command, or a bad region */
            if (r & 0x100000) {
                assert_int_equal(vfu_client_call(fx->c, 200 + (r >> 50) % 50,
                                                 buf, 8, NULL, 0, NULL, NULL,
                                                 NULL, NULL), -1);
            } else {
                assert_int_equal(vfu_client_region_read(fx->c, 31, 0, buf, 4), -1);
                assert_int_equal(errno, EINVAL);
            }
            break;
        case 8:     /* reset: the callback runs, BAR0 (device memory) stays */
            assert_int_equal(vfu_client_device_reset(fx->c), 0);
            m.resets++;
            assert_int_equal(__atomic_load_n(&fx->dev.reset_calls,
                                             __ATOMIC_ACQUIRE), m.resets);
            break;
        default:    /* now and then, a new client: the maps go */
            if ((r >> 32) % 8 == 0) {
                vfu_client_close(fx->c);
                fx->c = harness_connect(fx->srv);
                memset(m.mapped, 0, sizeof(m.mapped));
                /* losing the client resets the device too */
                for (int w = 0; w < 200; w++) {
                    if (__atomic_load_n(&fx->dev.reset_calls,
                                        __ATOMIC_ACQUIRE) != m.resets) {
                        break;
                    }
                    harness_sleep_ms(1);
                }
                m.resets = __atomic_load_n(&fx->dev.reset_calls,
                                           __ATOMIC_ACQUIRE);
            }
            break;
        }
    }
    print_message("soak: %u operations in %.1f s\n", it, now_s() - start);
    assert_true(it >= 1000);

    /* The whole of BAR0 matches the model. */
    uint8_t all[HARNESS_BAR0_SIZE];
    assert_int_equal(vfu_client_region_read(fx->c, 0, 0, all, sizeof(all)), 0);
    assert_memory_equal(all, m.bar0, sizeof(all));
    assert_int_equal(vfu_client_dma_unmap(fx->c, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL), 0);
    munmap(mem, SLOTS * SLOT_SIZE);
    close(memfd);
    assert_true(harness_fd_count_settle(0, base_fds - 1, 2000) <= base_fds - 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_soak, harness_fixture_setup,
                                        harness_fixture_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
