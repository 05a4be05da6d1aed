/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/* Writers mark pages while reports run: every page written shows up in
 * some report. And logging stops and restarts under the writers' feet. */

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dma_internal.h"

#define PG       4096ull
#define NPAGES   (1u << 14)     /* 64 MiB logged */
#define WRITERS  4
#define BASE     (1ull << 32)

struct shared {
    struct dirty_bits *log;
    vfu_ctx_t *ctx;
    int done;
    uint8_t written[WRITERS][NPAGES];
};

struct writer {
    struct shared *sh;
    int id;
};

static void *
writer_thread(void *arg)
{
    struct writer *w = arg;
    uint64_t s = 0x1234567ull * (uint64_t)(w->id + 1);

    for (int i = 0; i < 200000; i++) {
        uint64_t page;

        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        page = s % NPAGES;
        /* Order does not matter: the final report, after the join, takes
         * whatever the reports during the run did not. */
        w->sh->written[w->id][page] = 1;
        if (w->sh->ctx != NULL) {
            dirty_mark(w->sh->ctx, BASE + page * PG + (s >> 40) % PG, 1);
        } else {
            dirty_bits_mark(w->sh->log, BASE + page * PG + (s >> 40) % PG, 1);
        }
    }
    return NULL;
}

static void
test_no_lost_page(void **state)
{
    struct dirty_range_req r = { BASE, NPAGES * PG };
    struct shared *sh = calloc(1, sizeof(*sh));
    uint64_t *out = malloc(NPAGES / 8), *seen = calloc(NPAGES / 64, 8);
    struct writer w[WRITERS];
    pthread_t t[WRITERS];
    int reports = 0;

    assert_non_null(sh);
    sh->log = dirty_bits_new(PG, &r, 1, 1 << 20);
    assert_non_null(sh->log);
    for (int i = 0; i < WRITERS; i++) {
        w[i].sh = sh;
        w[i].id = i;
        assert_int_equal(pthread_create(&t[i], NULL, writer_thread, &w[i]), 0);
    }
    /* Report repeatedly while they write, half by half and whole. */
    for (int round = 0; round < 50; round++) {
        uint64_t off = round % 2 ? (NPAGES / 2) * PG : 0;
        uint64_t len = round % 3 ? (NPAGES / 2) * PG : NPAGES * PG - off;
        assert_int_equal(dirty_bits_report(sh->log, BASE + off, len, PG, out), 0);
        for (uint64_t i = 0; i < len / PG / 64; i++) {
            seen[off / PG / 64 + i] |= out[i];
        }
        reports++;
    }
    for (int i = 0; i < WRITERS; i++) {
        pthread_join(t[i], NULL);
    }
    assert_int_equal(dirty_bits_report(sh->log, BASE, NPAGES * PG, PG, out), 0);
    for (uint64_t i = 0; i < NPAGES / 64; i++) {
        seen[i] |= out[i];
    }
    for (uint32_t p = 0; p < NPAGES; p++) {
        bool wrote = false;
        for (int i = 0; i < WRITERS; i++) {
            wrote |= sh->written[i][p];
        }
        if (((seen[p / 64] >> (p % 64)) & 1) != wrote) {
            fail_msg("page %u: written %d, reported %d", p, wrote,
                     (int)((seen[p / 64] >> (p % 64)) & 1));
        }
    }
    assert_true(reports > 0);
    dirty_bits_free(sh->log);
    free(sh);
    free(out);
    free(seen);
}

static void
test_stop_start_under_writers(void **state)
{
    struct dirty_range_req r = { BASE, NPAGES * PG };
    struct shared *sh = calloc(1, sizeof(*sh));
    vfu_ctx_t *ctx = calloc(1, sizeof(*ctx));
    struct writer w[WRITERS];
    pthread_t t[WRITERS];

    assert_non_null(sh);
    assert_non_null(ctx);
    ctx->dirty = calloc(1, sizeof(*ctx->dirty));
    assert_non_null(ctx->dirty);
    sh->ctx = ctx;
    atomic_store(&ctx->dirty->bits, dirty_bits_new(PG, &r, 1, 1 << 20));
    for (int i = 0; i < WRITERS; i++) {
        w[i].sh = sh;
        w[i].id = i;
        assert_int_equal(pthread_create(&t[i], NULL, writer_thread, &w[i]), 0);
    }
    /* Freed logs must never be touched (ASan/TSan watch this). */
    for (int round = 0; round < 200; round++) {
        dirty_stop(ctx);
        atomic_store(&ctx->dirty->bits, dirty_bits_new(PG, &r, 1, 1 << 20));
    }
    for (int i = 0; i < WRITERS; i++) {
        pthread_join(t[i], NULL);
    }
    dirty_free(ctx);
    assert_null(ctx->dirty);
    free(ctx);
    free(sh);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_lost_page),
        cmocka_unit_test(test_stop_start_under_writers),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
