/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/* The dirty page log on its own: random marks and reports against a plain
 * per-page model, for several log and report page sizes. */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dma_internal.h"

#define BASE   (1ull << 30)
#define SPACE  (64ull << 20)
#define KIB    1024ull
#define MIB    (1024ull * 1024)

static uint64_t
rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Raw ranges, deliberately unaligned; the last two share a page at 4 KiB
 * and larger log page sizes, so they merge. */
static const struct dirty_range_req ranges[] = {
    { BASE + 5000, 10 * MIB },
    { BASE + 12 * MIB + 7, 3 * MIB },
    { BASE + 15 * MIB + 9, 20 * MIB },
    { BASE + 40 * MIB, 4 * MIB },
};

struct model {
    uint64_t L;
    size_t npages;
    bool *dirty;
    bool *logged;
};

static void
model_init(struct model *m, uint64_t L)
{
    m->L = L;
    m->npages = SPACE / L;
    m->dirty = calloc(m->npages, 1);
    m->logged = calloc(m->npages, 1);
    assert_non_null(m->dirty);
    assert_non_null(m->logged);
    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
        uint64_t a = ranges[i].iova - BASE, b = a + ranges[i].length - 1;
        for (uint64_t k = a / L; k <= b / L; k++) {
            m->logged[k] = true;
        }
    }
}

static void
model_mark(struct model *m, uint64_t iova, uint64_t len)
{
    uint64_t a = iova - BASE, b = a + len - 1;

    for (uint64_t k = a / m->L; k <= b / m->L && k < m->npages; k++) {
        if (m->logged[k]) {
            m->dirty[k] = true;
        }
    }
}

static void
check_report(struct dirty_bits *log, struct model *m, uint64_t a, uint64_t len,
             uint64_t P)
{
    uint64_t bytes = dirty_bitmap_bytes(len, P), nbits = (len + P - 1) / P;
    uint64_t *out = malloc(bytes);
    uint64_t ra = a - BASE, rb = ra + len - 1;

    assert_non_null(out);
    memset(out, 0xa5, bytes);
    assert_int_equal(dirty_bits_report(log, a, len, P, out), 0);
    for (uint64_t j = 0; j < bytes * 8; j++) {
        bool got = (out[j / 64] >> (j % 64)) & 1, want = false;

        if (j < nbits) {
            uint64_t lo = ra + j * P, hi = lo + P - 1 < rb ? lo + P - 1 : rb;
            for (uint64_t k = lo / m->L; k <= hi / m->L; k++) {
                want |= m->dirty[k];
            }
        }
        if (got != want) {
            fail_msg("L %#lx P %#lx report %#lx+%#lx: bit %lu is %d",
                     (unsigned long)m->L, (unsigned long)P, (unsigned long)a,
                     (unsigned long)len, (unsigned long)j, got);
        }
    }
    /* Pages wholly inside the report are now clean; edge pages are kept. */
    for (uint64_t k = ra / m->L; k <= rb / m->L; k++) {
        if (k * m->L >= ra && k * m->L + m->L - 1 <= rb) {
            m->dirty[k] = false;
        }
    }
    free(out);
}

static void
run_sizes(uint64_t L, uint64_t seed)
{
    static const uint64_t Ps[] = { 4 * KIB, 8 * KIB, 64 * KIB, 2 * MIB, 512 };
    struct dirty_bits *log;
    struct model m;

    model_init(&m, L);
    log = dirty_bits_new(L, ranges, sizeof(ranges) / sizeof(ranges[0]),
                         1ull << 30);
    assert_non_null(log);
    for (int round = 0; round < 300; round++) {
        int nmarks = (int)(rnd(&seed) % 20);
        uint64_t P = Ps[rnd(&seed) % (sizeof(Ps) / sizeof(Ps[0]))];
        uint32_t ri = (uint32_t)(rnd(&seed) % log->nr_ranges);
        struct dirty_range *r = &log->ranges[ri];
        uint64_t rsize = r->pages * L, a, len;

        for (int i = 0; i < nmarks; i++) {
            uint64_t iova = BASE + rnd(&seed) % SPACE;
            uint64_t l = 1 + rnd(&seed) % (rnd(&seed) % 4 == 0 ? 3 * MIB : 3 * L);
            if (iova + l > BASE + SPACE) {
                l = BASE + SPACE - iova;
            }
            dirty_bits_mark(log, iova, l);
            model_mark(&m, iova, l);
        }
        /* A report inside one logged range, aligned or not. */
        a = r->start + (rnd(&seed) % 2 ? (rnd(&seed) % rsize) & ~(P - 1)
                                       : rnd(&seed) % rsize);
        if (a >= r->start + rsize) {
            a = r->start;
        }
        len = 1 + rnd(&seed) % (r->start + rsize - a);
        if (P == 512 && dirty_bitmap_bytes(len, P) > (1u << 20)) {
            len = 512 * 64 * 100;
            if (a + len > r->start + rsize) {
                len = r->start + rsize - a;
            }
        }
        check_report(log, &m, a, len, P);
    }
    /* Outside the log, across a gap, or bad arguments. */
    {
        uint64_t out[8];
        struct dirty_range *last = &log->ranges[log->nr_ranges - 1];

        assert_int_equal(dirty_bits_report(log, BASE - 4096, 4096, 4096, out), -1);
        assert_int_equal(errno, EINVAL);
        assert_int_equal(dirty_bits_report(log, last->start - 4096, 8192, 4096, out), -1);
        assert_int_equal(errno, EINVAL);
        assert_int_equal(dirty_bits_report(log, BASE + 5000, 0, 4096, out), -1);
        assert_int_equal(errno, EINVAL);
        assert_int_equal(dirty_bits_report(log, BASE + 5000, 4096, 3000, out), -1);
        assert_int_equal(errno, EINVAL);
    }
    dirty_bits_free(log);
    free(m.dirty);
    free(m.logged);
}

static void test_log_4k(void **state) { run_sizes(4 * KIB, 1); }
static void test_log_8k(void **state) { run_sizes(8 * KIB, 2); }
static void test_log_64k(void **state) { run_sizes(64 * KIB, 3); }
static void test_log_2m(void **state) { run_sizes(2 * MIB, 4); }

static void
test_ranges_merge_and_limits(void **state)
{
    struct dirty_range_req r[3] = {
        { 0x10000, 0x100 }, { 0x10100, 0x100 }, { 0x30000, 0x1000 },
    };
    struct dirty_bits *log = dirty_bits_new(4096, r, 3, 1 << 20);
    uint64_t out[1];

    assert_non_null(log);
    assert_int_equal(log->nr_ranges, 2);        /* the first two share a page */
    dirty_bits_mark(log, 0x100ff, 2);
    assert_int_equal(dirty_bits_report(log, 0x10000, 0x1000, 4096, out), 0);
    assert_int_equal(out[0], 1);
    assert_int_equal(dirty_bits_report(log, 0x10000, 0x1000, 4096, out), 0);
    assert_int_equal(out[0], 0);                /* read and cleared */
    /* A mark past the end of the address space is clipped, not wrapped. */
    dirty_bits_mark(log, UINT64_MAX - 10, 100);
    dirty_bits_free(log);

    /* Overlapping, empty and wrapping ranges; bad page sizes. */
    r[1].iova = 0x100ff;
    assert_null(dirty_bits_new(4096, r, 3, 1 << 20));
    assert_int_equal(errno, EINVAL);
    r[1].iova = 0x20000;
    r[1].length = 0;
    assert_null(dirty_bits_new(4096, r, 3, 1 << 20));
    assert_int_equal(errno, EINVAL);
    r[1].iova = UINT64_MAX - 10;
    r[1].length = 20;
    assert_null(dirty_bits_new(4096, r, 2, 1 << 20));
    assert_int_equal(errno, EINVAL);
    r[1].length = 11;           /* ends exactly at 2^64: fine */
    log = dirty_bits_new(4096, r, 2, 1 << 20);
    assert_non_null(log);
    dirty_bits_mark(log, UINT64_MAX - 1, 2);
    assert_int_equal(dirty_bits_report(log, UINT64_MAX - 4095, 4096, 4096, out), 0);
    assert_int_equal(out[0], 1);
    dirty_bits_free(log);
    assert_null(dirty_bits_new(3000, r, 1, 1 << 20));
    assert_int_equal(errno, EINVAL);
    assert_null(dirty_bits_new(4096, r, 0, 1 << 20));
    assert_int_equal(errno, EINVAL);
    /* The memory bound: 64 GiB at 4 KiB is 2 MiB of bitmap. */
    r[0].iova = 0;
    r[0].length = 64ull << 30;
    assert_null(dirty_bits_new(4096, r, 1, (2 << 20) - 8));
    assert_int_equal(errno, E2BIG);
    r[0].length = UINT64_MAX;
    assert_null(dirty_bits_new(4096, r, 1, 256 << 20));
    assert_int_equal(errno, E2BIG);
    r[0].length = 64ull << 30;
    log = dirty_bits_new(4096, r, 1, 2 << 20);
    assert_non_null(log);
    dirty_bits_free(log);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_4k),
        cmocka_unit_test(test_log_8k),
        cmocka_unit_test(test_log_64k),
        cmocka_unit_test(test_log_2m),
        cmocka_unit_test(test_ranges_merge_and_limits),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
