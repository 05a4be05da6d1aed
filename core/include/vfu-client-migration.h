/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * vfu client migration helpers: the VMM's sequence for moving a device's
 * state from a source server to a destination server, built on the raw
 * calls of vfu-client.h (DEVICE_FEATURE, MIG_DATA_READ/WRITE, DMA logging).
 *
 * Source:      [dirty logging on] RUNNING -> PRE_COPY, rounds of device
 *              data and dirty-page reports, -> STOP_COPY, the rest of the
 *              data, [dirty logging off] -> STOP.
 * Destination: -> RESUMING (through STOP), data, -> RUNNING.
 *
 * Each call returns as vfu-client.h calls do: 0 or a count on success, -1
 * with errno (the server's or a local error) on failure.
 */
#ifndef VFU_CLIENT_MIGRATION_H
#define VFU_CLIENT_MIGRATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "vfu-client.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Receives a piece of the migration stream, in order; 0 or -1 with errno. */
typedef int (vfu_client_mig_sink_t)(void *opaque, const void *buf, size_t len);

/* Receives the dirty bitmap of one logged range (one bit a page_size). */
typedef int (vfu_client_mig_dirty_t)(void *opaque, uint64_t iova,
                                     uint64_t length, uint64_t page_size,
                                     const uint64_t *bitmap);

/*
 * vfu_client_mig_read_all() - read the stream until the server's first short
 * read (the end of what the current state offers), handing it to @sink in
 * pieces of at most max_data_xfer_size. The device must be in PRE_COPY or
 * STOP_COPY. Returns the bytes moved.
 */
ssize_t
vfu_client_mig_read_all(vfu_client_t *src, vfu_client_mig_sink_t *sink,
                        void *opaque);

/*
 * vfu_client_mig_write_all() - MIG_DATA_WRITE @len bytes in pieces of at
 * most max_data_xfer_size. The device must be in RESUMING.
 */
int
vfu_client_mig_write_all(vfu_client_t *dst, const void *buf, size_t len);

/*
 * vfu_client_mig_dirty_report() - DMA_LOGGING_REPORT for each of @nr
 * ranges at @page_size, each bitmap handed to @cb. @nr == 0 does nothing.
 */
int
vfu_client_mig_dirty_report(vfu_client_t *src,
    const struct vfio_user_device_feature_dma_logging_range *ranges,
    uint32_t nr, uint64_t page_size, vfu_client_mig_dirty_t *cb,
    void *opaque);

/* What vfu_client_migrate() did. */
struct vfu_client_mig_stats {
    uint64_t precopy_bytes;     /* device data moved while running */
    uint64_t stopcopy_bytes;    /* device data moved while stopped */
    uint32_t rounds;            /* pre-copy rounds */
    uint64_t downtime_ns;       /* source leaves RUNNING/PRE_COPY until the
                                   destination runs */
};

/* How vfu_client_migrate() runs. */
struct vfu_client_mig_params {
    uint32_t max_rounds;        /* pre-copy rounds at most (0: none) */
    uint64_t converge_bytes;    /* stop pre-copy once a round moves less */
    /* DMA dirty logging on the source, optional (nr_ranges == 0: off) */
    const struct vfio_user_device_feature_dma_logging_range *ranges;
    uint32_t nr_ranges;
    uint64_t page_size;
    vfu_client_mig_dirty_t *on_dirty;   /* per round and after stopping */
    void *opaque;
};

/*
 * vfu_client_migrate() - move the device state from @src to @dst.
 *
 * @src must be RUNNING, @dst RUNNING or STOP. Ends with @dst RUNNING and
 * @src STOP (the VMM then disconnects or resets it). On failure both are
 * left where the failing step left them; the usual recovery is a
 * DEVICE_RESET of the destination and setting the source back to RUNNING.
 */
int
vfu_client_migrate(vfu_client_t *src, vfu_client_t *dst,
                   const struct vfu_client_mig_params *params,
                   struct vfu_client_mig_stats *stats);

#ifdef __cplusplus
}
#endif

#endif /* VFU_CLIENT_MIGRATION_H */
