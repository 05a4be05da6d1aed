/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * The VFIO migration v2 state machine as pure functions, shared by
 * migration.c and its unit tests. States are enum vfio_user_device_mig_state.
 */
#ifndef VFU_MIGRATION_INTERNAL_H
#define VFU_MIGRATION_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "libvfio-user.h"

/* Is this one of the states a vfio-user device can be set to? (STOP,
 * RUNNING, STOP_COPY, RESUMING, PRE_COPY; never ERROR or a P2P state.) */
bool vfu_mig_state_settable(uint32_t state);

/* Is cur -> next a single arc of the state machine? */
bool vfu_mig_arc_legal(uint32_t cur, uint32_t next);

/*
 * The first step on the shortest legal path from cur to target, as the
 * kernel's combination transitions define it: saving states (PRE_COPY,
 * STOP_COPY) may only start or end a path. Stores cur itself when
 * cur == target. Returns 0, or -1 with errno EINVAL when target cannot be
 * set or cannot be reached from cur (e.g. anything from ERROR, or
 * STOP_COPY -> PRE_COPY).
 */
int vfu_mig_next_state(uint32_t cur, uint32_t target, uint32_t *next);

/* The library state a device callback sees for a settable state. */
vfu_migr_state_t vfu_mig_state_to_vfu(uint32_t state);

/* Does the device migrate? (VERSION offers migration{pgsize} only then.)
 * Also declared in private.h, for version.c. */
struct vfu_ctx;
bool vfu_migration_enabled(const struct vfu_ctx *ctx);

/* A state's name for logs ("?" when out of range). */
const char *vfu_mig_state_name(uint32_t state);

#endif /* VFU_MIGRATION_INTERNAL_H */
