/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * The migration state machine against an independent model: the direct arcs
 * listed by the vfio-user spec, and a breadth-first search for the shortest
 * path whose interior avoids the saving states. Every (current, target) pair
 * of the 8 states, plus out-of-range values, is checked.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "migration_internal.h"

#define NS VFIO_USER_DEVICE_NUM_STATES

enum {
    ERR = VFIO_USER_DEVICE_STATE_ERROR,
    STOP = VFIO_USER_DEVICE_STATE_STOP,
    RUN = VFIO_USER_DEVICE_STATE_RUNNING,
    SC = VFIO_USER_DEVICE_STATE_STOP_COPY,
    RES = VFIO_USER_DEVICE_STATE_RESUMING,
    RP2P = VFIO_USER_DEVICE_STATE_RUNNING_P2P,
    PC = VFIO_USER_DEVICE_STATE_PRE_COPY,
    PCP2P = VFIO_USER_DEVICE_STATE_PRE_COPY_P2P,
};

/* "Direct State Transitions" of the spec. */
static const uint32_t spec_arcs[][2] = {
    { RUN, STOP }, { SC, STOP }, { RES, STOP }, { PC, RUN }, { STOP, RUN },
    { RUN, PC }, { STOP, SC }, { PC, SC }, { STOP, RES },
};

static bool
model_arc(uint32_t a, uint32_t b)
{
    for (size_t i = 0; i < sizeof(spec_arcs) / sizeof(spec_arcs[0]); i++) {
        if (spec_arcs[i][0] == a && spec_arcs[i][1] == b) {
            return true;
        }
    }
    return false;
}

static bool
saving(uint32_t s)
{
    return s == PC || s == SC;
}

/* Shortest path length from a to b with no saving state strictly inside,
 * or -1. */
static int
model_distance(uint32_t a, uint32_t b)
{
    int dist[NS];
    uint32_t queue[NS];
    unsigned head = 0, tail = 0;

    for (unsigned i = 0; i < NS; i++) {
        dist[i] = -1;
    }
    dist[a] = 0;
    queue[tail++] = a;
    while (head < tail) {
        uint32_t u = queue[head++];

        if (u == b) {
            return dist[u];
        }
        if (u != a && saving(u)) {
            continue;   /* a saving state may only end a path */
        }
        for (uint32_t v = 0; v < NS; v++) {
            if (dist[v] < 0 && model_arc(u, v)) {
                dist[v] = dist[u] + 1;
                queue[tail++] = v;
            }
        }
    }
    return -1;
}

static bool
model_settable(uint32_t s)
{
    return s == STOP || s == RUN || s == SC || s == RES || s == PC;
}

static void
test_settable(void **state)
{
    for (uint32_t s = 0; s < NS + 3; s++) {
        assert_int_equal(vfu_mig_state_settable(s), s < NS && model_settable(s));
    }
    assert_false(vfu_mig_state_settable(UINT32_MAX));
}

static void
test_direct_arcs(void **state)
{
    unsigned legal = 0;

    for (uint32_t a = 0; a < NS + 2; a++) {
        for (uint32_t b = 0; b < NS + 2; b++) {
            bool expect = a < NS && b < NS && model_arc(a, b);

            assert_int_equal(vfu_mig_arc_legal(a, b), expect);
            legal += expect;
        }
    }
    assert_int_equal(legal, 9);
}

static void
test_every_pair(void **state)
{
    for (uint32_t cur = 0; cur < NS; cur++) {
        for (uint32_t target = 0; target < NS; target++) {
            int d = model_distance(cur, target);
            uint32_t next = 0xdead;
            int ret;

            /* Unreachable: ERROR source (only reset leaves it), targets
             * that can't be set, and the spec's explicit refusal. */
            if (cur == ERR || !model_settable(cur) || !model_settable(target)
                || (cur == SC && target == PC)) {
                d = -1;
            }
            errno = 0;
            ret = vfu_mig_next_state(cur, target, &next);
            if (d < 0) {
                assert_int_equal(ret, -1);
                assert_int_equal(errno, EINVAL);
                assert_int_equal(next, 0xdead);
                continue;
            }
            assert_int_equal(ret, 0);
            if (d == 0) {
                assert_int_equal(next, cur);
                continue;
            }
            /* Walk the path: every step is a legal arc, interior states are
             * not saving states, and the length is the shortest. */
            uint32_t s = cur;
            int steps = 0;

            while (s != target) {
                assert_int_equal(vfu_mig_next_state(s, target, &next), 0);
                assert_true(model_arc(s, next));
                assert_true(vfu_mig_arc_legal(s, next));
                if (next != target) {
                    assert_false(saving(next));
                }
                s = next;
                assert_true(++steps <= d);
            }
            assert_int_equal(steps, d);
        }
    }
}

static void
test_specific_paths(void **state)
{
    uint32_t n;

    /* RUNNING -> STOP_COPY goes through STOP, never PRE_COPY. */
    assert_int_equal(vfu_mig_next_state(RUN, SC, &n), 0);
    assert_int_equal(n, STOP);
    /* PRE_COPY -> STOP leaves through RUNNING, not STOP_COPY. */
    assert_int_equal(vfu_mig_next_state(PC, STOP, &n), 0);
    assert_int_equal(n, RUN);
    /* RESUMING -> PRE_COPY: STOP, RUNNING, PRE_COPY. */
    assert_int_equal(vfu_mig_next_state(RES, PC, &n), 0);
    assert_int_equal(n, STOP);
    assert_int_equal(model_distance(RES, PC), 3);
    /* STOP_COPY -> PRE_COPY is refused although a path exists. */
    assert_int_equal(model_distance(SC, PC), 3);
    assert_int_equal(vfu_mig_next_state(SC, PC, &n), -1);
    /* P2P states and ERROR are never targets. */
    assert_int_equal(vfu_mig_next_state(RUN, RP2P, &n), -1);
    assert_int_equal(vfu_mig_next_state(RUN, PCP2P, &n), -1);
    assert_int_equal(vfu_mig_next_state(RUN, ERR, &n), -1);
    assert_int_equal(vfu_mig_next_state(ERR, RUN, &n), -1);
    assert_int_equal(vfu_mig_next_state(RUN, NS, &n), -1);
    assert_int_equal(vfu_mig_next_state(NS, RUN, &n), -1);
    assert_int_equal(vfu_mig_next_state(UINT32_MAX, UINT32_MAX, &n), -1);
}

static void
test_names_and_mapping(void **state)
{
    assert_string_equal(vfu_mig_state_name(PC), "PRE_COPY");
    assert_string_equal(vfu_mig_state_name(NS), "?");
    assert_int_equal(vfu_mig_state_to_vfu(STOP), VFU_MIGR_STATE_STOP);
    assert_int_equal(vfu_mig_state_to_vfu(RUN), VFU_MIGR_STATE_RUNNING);
    assert_int_equal(vfu_mig_state_to_vfu(SC), VFU_MIGR_STATE_STOP_AND_COPY);
    assert_int_equal(vfu_mig_state_to_vfu(PC), VFU_MIGR_STATE_PRE_COPY);
    assert_int_equal(vfu_mig_state_to_vfu(RES), VFU_MIGR_STATE_RESUME);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_settable),
        cmocka_unit_test(test_direct_arcs),
        cmocka_unit_test(test_every_pair),
        cmocka_unit_test(test_specific_paths),
        cmocka_unit_test(test_names_and_mapping),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
