/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * VFIO migration v2 state machine (QEMU's vfio-user spec, "Direct State
 * Transitions" and "Complex State Transitions"; linux/vfio.h). The P2P
 * states do not exist over vfio-user, and PRE_COPY is always offered.
 */
#include <errno.h>

#include "migration_internal.h"

enum {
    S_ERROR     = VFIO_USER_DEVICE_STATE_ERROR,
    S_STOP      = VFIO_USER_DEVICE_STATE_STOP,
    S_RUNNING   = VFIO_USER_DEVICE_STATE_RUNNING,
    S_STOP_COPY = VFIO_USER_DEVICE_STATE_STOP_COPY,
    S_RESUMING  = VFIO_USER_DEVICE_STATE_RESUMING,
    S_PRE_COPY  = VFIO_USER_DEVICE_STATE_PRE_COPY,
    S_NUM       = VFIO_USER_DEVICE_NUM_STATES,
};

bool
vfu_mig_state_settable(uint32_t state)
{
    switch (state) {
    case S_STOP:
    case S_RUNNING:
    case S_STOP_COPY:
    case S_RESUMING:
    case S_PRE_COPY:
        return true;
    default:
        return false;
    }
}

/*
 * next_step[cur][target]: the state to move to first. S_ERROR marks an
 * unreachable target; the diagonal is the state itself. Rows and columns
 * of ERROR and the P2P states stay S_ERROR (zero).
 */
static const uint8_t next_step[S_NUM][S_NUM] = {
    [S_RUNNING] = {
        [S_RUNNING] = S_RUNNING,    [S_STOP] = S_STOP,
        [S_PRE_COPY] = S_PRE_COPY,
        /* PRE_COPY would be an interior saving state: go through STOP */
        [S_STOP_COPY] = S_STOP,     [S_RESUMING] = S_STOP,
    },
    [S_STOP] = {
        [S_STOP] = S_STOP,          [S_RUNNING] = S_RUNNING,
        [S_STOP_COPY] = S_STOP_COPY, [S_RESUMING] = S_RESUMING,
        [S_PRE_COPY] = S_RUNNING,
    },
    [S_STOP_COPY] = {
        [S_STOP_COPY] = S_STOP_COPY, [S_STOP] = S_STOP,
        [S_RUNNING] = S_STOP,       [S_RESUMING] = S_STOP,
        /* STOP_COPY -> PRE_COPY is explicitly refused by the spec */
    },
    [S_RESUMING] = {
        [S_RESUMING] = S_RESUMING,  [S_STOP] = S_STOP,
        [S_RUNNING] = S_STOP,       [S_STOP_COPY] = S_STOP,
        [S_PRE_COPY] = S_STOP,
    },
    [S_PRE_COPY] = {
        [S_PRE_COPY] = S_PRE_COPY,  [S_RUNNING] = S_RUNNING,
        [S_STOP_COPY] = S_STOP_COPY,
        /* STOP_COPY may not be interior: leave through RUNNING */
        [S_STOP] = S_RUNNING,       [S_RESUMING] = S_RUNNING,
    },
};

bool
vfu_mig_arc_legal(uint32_t cur, uint32_t next)
{
    if (cur >= S_NUM || next >= S_NUM || cur == next ||
        !vfu_mig_state_settable(cur) || !vfu_mig_state_settable(next)) {
        return false;
    }
    /* A direct arc is exactly a first step that lands on its target. */
    return next_step[cur][next] == next;
}

int
vfu_mig_next_state(uint32_t cur, uint32_t target, uint32_t *next)
{
    if (cur >= S_NUM || target >= S_NUM) {
        errno = EINVAL;
        return -1;
    }
    if (next_step[cur][target] == S_ERROR) {
        errno = EINVAL;
        return -1;
    }
    *next = next_step[cur][target];
    return 0;
}

vfu_migr_state_t
vfu_mig_state_to_vfu(uint32_t state)
{
    switch (state) {
    case S_STOP:
        return VFU_MIGR_STATE_STOP;
    case S_STOP_COPY:
        return VFU_MIGR_STATE_STOP_AND_COPY;
    case S_RESUMING:
        return VFU_MIGR_STATE_RESUME;
    case S_PRE_COPY:
        return VFU_MIGR_STATE_PRE_COPY;
    default:
        return VFU_MIGR_STATE_RUNNING;
    }
}

const char *
vfu_mig_state_name(uint32_t state)
{
    static const char *const names[S_NUM] = {
        "ERROR", "STOP", "RUNNING", "STOP_COPY", "RESUMING",
        "RUNNING_P2P", "PRE_COPY", "PRE_COPY_P2P",
    };

    return state < S_NUM ? names[state] : "?";
}
