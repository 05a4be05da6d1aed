/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * DMA_MAP and DMA_UNMAP: checking the client's requests and keeping the
 * device told (register/unregister callbacks) while dma_table.c keeps the
 * maps.
 */

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "dma_internal.h"

/*
 * The largest map accepted (as libvfio-user): 8 TiB on 64-bit hosts,
 * what the address space allows on 32-bit ones.
 */
#if UINTPTR_MAX > 0xffffffffu
#define DMA_MAX_MAP_SIZE (8ull << 40)
#else
#define DMA_MAX_MAP_SIZE ((uint64_t)UINTPTR_MAX)
#endif

int
vfu_setup_device_dma(vfu_ctx_t *ctx, size_t max_regions,
                     vfu_dma_register_cb_t *dma_register,
                     vfu_dma_unregister_cb_t *dma_unregister)
{
    if (ctx == NULL || max_regions > LIBVFIO_USER_MAX_DMA_REGIONS) {
        errno = EINVAL;
        return -1;
    }
    if (ctx->dma == NULL) {
        ctx->dma = dma_table_new();
        if (ctx->dma == NULL) {
            return -1;
        }
    }
    if (ctx->dirty == NULL) {
        ctx->dirty = calloc(1, sizeof(*ctx->dirty));
        if (ctx->dirty == NULL) {
            return -1;
        }
    }
    ctx->max_dma_maps = max_regions != 0 ? (uint32_t)max_regions
                                         : LIBVFIO_USER_MAX_DMA_REGIONS;
    ctx->dma_register_cb = dma_register;
    ctx->dma_unregister_cb = dma_unregister;
    return 0;
}

int
vfu_handle_dma_map(vfu_ctx_t *ctx, struct vfu_msg *msg)
{
    const uint32_t rw = VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_WRITE;
    const uint32_t modes = VFIO_USER_F_DMA_REGION_MMAP |
                           VFIO_USER_F_DMA_REGION_FILE_IO;
    struct vfio_user_dma_map req;
    struct dma_map *m;
    uint32_t prot = 0;
    bool file_io;
    int fd = -1;

    if (msg->in_size != sizeof(req)) {
        vfu_log(ctx, LOG_ERR, "DMA_MAP: bad size %zu", msg->in_size);
        errno = EINVAL;
        return -1;
    }
    memcpy(&req, msg->in, sizeof(req));
    /*
     * An access mode says how to reach the fd's memory: one at most, and
     * only with an fd. An fd without one may be mmap()ed, as QEMU expects.
     */
    if (req.argsz < sizeof(req) || (req.flags & ~(rw | modes)) != 0 ||
        (req.flags & rw) == 0 || (req.flags & modes) == modes ||
        msg->nr_fds > 1 || msg->fds_truncated ||
        ((req.flags & modes) != 0 && msg->nr_fds == 0)) {
        vfu_log(ctx, LOG_ERR, "DMA_MAP: bad argsz %u, flags %#x or %u fds",
                req.argsz, req.flags, msg->nr_fds);
        errno = EINVAL;
        return -1;
    }
    file_io = (req.flags & VFIO_USER_F_DMA_REGION_FILE_IO) != 0;
    if (req.size == 0 || req.size - 1 > UINT64_MAX - req.addr) {
        vfu_log(ctx, LOG_ERR, "DMA_MAP: bad range %#lx+%#lx",
                (unsigned long)req.addr, (unsigned long)req.size);
        errno = EINVAL;
        return -1;
    }
    if (req.size > DMA_MAX_MAP_SIZE) {
        vfu_log(ctx, LOG_ERR, "DMA_MAP: size %#lx above the limit %#llx",
                (unsigned long)req.size, (unsigned long long)DMA_MAX_MAP_SIZE);
        errno = ENOSPC;
        return -1;
    }
    if (ctx->dma == NULL) {
        /* Like libvfio-user: without DMA set up, maps are accepted unused. */
        return 0;
    }
    if (msg->nr_fds == 1) {
        fd = msg->fds[0];
    }
    prot |= (req.flags & VFIO_USER_F_DMA_REGION_READ) ? PROT_READ : 0;
    prot |= (req.flags & VFIO_USER_F_DMA_REGION_WRITE) ? PROT_WRITE : 0;
    /*
     * Logging all writes (a START without ranges, during migration): the
     * new map, like those at START, is logged before the device can write
     * it (a read-only one too, so that it can be reported); a map that can't
     * be logged is refused, as its pages would be lost to migration.
     * Checked first, so a bad map only leaves a harmless extra range.
     */
    if (!dma_table_overlaps(ctx->dma, req.addr, req.addr + (req.size - 1)) &&
        dirty_log_map(ctx, req.addr, req.size) < 0) {
        vfu_log_errno(ctx, LOG_ERR, errno, "DMA_MAP %#lx+%#lx: cannot be "
                      "dirty logged", (unsigned long)req.addr,
                      (unsigned long)req.size);
        return -1;
    }
    m = dma_table_insert(ctx->dma, req.addr, req.size, fd, req.offset, prot,
                         file_io, ctx->max_dma_maps);
    if (m == NULL && errno == ENOSPC) {
        errno = EINVAL;     /* past the device's max_regions */
    }
    if (m == NULL) {
        vfu_log_errno(ctx, LOG_ERR, errno, "DMA_MAP %#lx+%#lx fd %d offset %#lx",
                      (unsigned long)req.addr, (unsigned long)req.size, fd,
                      (unsigned long)req.offset);
        return -1;
    }
    if (dma_map_past_eof(m) != 0) {
        /*
         * libvfio-user accepts such maps (and would fault on those pages);
         * a client may size its file lazily. Worth a word all the same:
         * the device's DMA there goes nowhere the client can see.
         */
        uint64_t past = dma_map_past_eof(m);

        if (file_io) {
            vfu_log(ctx, LOG_WARNING, "DMA_MAP %#lx+%#lx: the last %#llx bytes "
                    "lie past the end of the file; direct accesses to them "
                    "fail with EFAULT", (unsigned long)req.addr,
                    (unsigned long)req.size, (unsigned long long)past);
        } else {
            vfu_log(ctx, LOG_WARNING, "DMA_MAP %#lx+%#lx: the last %#llx bytes "
                    "lie past the end of the file; they are backed by the "
                    "server's own memory (%#llx bytes for all maps), which the "
                    "client never sees", (unsigned long)req.addr,
                    (unsigned long)req.size, (unsigned long long)past,
                    (unsigned long long)ctx->dma->anon_bytes);
        }
    }
    if (m->by_msg) {
        /* See file_may_shrink() in dma_table.c. */
        vfu_log(ctx, LOG_WARNING, "DMA_MAP %#lx+%#lx: the file could shrink "
                "under a mapping (a memfd not sealed with F_SEAL_SHRINK, or "
                "more unsealable files mapped than the SIGBUS guard holds); "
                "it is not mapped, the device reaches it by DMA_READ/WRITE "
                "messages", (unsigned long)req.addr, (unsigned long)req.size);
    }
    vfu_log(ctx, LOG_DEBUG, "DMA_MAP %#lx+%#lx%s", (unsigned long)req.addr,
            (unsigned long)req.size,
            fd < 0 || m->by_msg ? " (messages only)"
                                : file_io ? " (file I/O)" : "");
    if (ctx->dma_register_cb != NULL) {
        vfu_dma_info_t info;

        dma_map_info(m, &info);
        ctx->dma_register_cb(ctx, &info);
    }
    return 0;
}

/* Tell the device, then drop the map; the device must let go first. */
static void
remove_map(vfu_ctx_t *ctx, struct dma_map *m)
{
    if (ctx->dma_unregister_cb != NULL) {
        vfu_dma_info_t info;

        dma_map_info(m, &info);
        ctx->dma_unregister_cb(ctx, &info);
    }
    dma_table_del(ctx->dma, m);
}

int
vfu_handle_dma_unmap(vfu_ctx_t *ctx, struct vfu_msg *msg)
{
    struct vfio_user_dma_unmap req;
    struct dma_map *m;

    if (msg->in_size != sizeof(req)) {
        vfu_log(ctx, LOG_ERR, "DMA_UNMAP: bad size %zu", msg->in_size);
        errno = EINVAL;
        return -1;
    }
    memcpy(&req, msg->in, sizeof(req));
    /* argsz is the client's room for the reply: more than any reply we
     * could send is a bad request. */
    if (req.argsz < sizeof(req) || req.argsz > VFU_DEFAULT_MAX_DATA_XFER ||
        (req.flags & ~VFIO_DMA_UNMAP_FLAG_ALL) != 0 || msg->nr_fds != 0) {
        /* GET_DIRTY_BITMAP belongs to the old migration protocol. */
        vfu_log(ctx, LOG_ERR, "DMA_UNMAP: bad argsz %u, flags %#x or fds",
                req.argsz, req.flags);
        errno = EINVAL;
        return -1;
    }
    if (req.flags & VFIO_DMA_UNMAP_FLAG_ALL) {
        if (req.addr != 0 || req.size != 0) {
            vfu_log(ctx, LOG_ERR, "DMA_UNMAP: ALL with a range");
            errno = EINVAL;
            return -1;
        }
        while (ctx->dma != NULL && (m = dma_table_any(ctx->dma)) != NULL) {
            remove_map(ctx, m);
        }
    } else if (ctx->dma != NULL) {
        if (req.size == 0 || req.size - 1 > UINT64_MAX - req.addr) {
            vfu_log(ctx, LOG_ERR, "DMA_UNMAP: bad range");
            errno = EINVAL;
            return -1;
        }
        m = dma_table_find(ctx->dma, req.addr, req.size);
        if (m == NULL) {
            /* Distinguish a partial unmap from nothing mapped there. */
            uint64_t last = req.addr + (req.size - 1);
            errno = dma_table_overlaps(ctx->dma, req.addr, last) ? EINVAL
                                                                 : ENOENT;
            vfu_log_errno(ctx, LOG_ERR, errno, "DMA_UNMAP %#lx+%#lx",
                          (unsigned long)req.addr, (unsigned long)req.size);
            return -1;
        }
        remove_map(ctx, m);
    }
    /* The reply echoes the request; msg->in stays put until it is sent. */
    return vfu_msg_reply_add(msg, msg->in, sizeof(req));
}

void
vfu_dma_report_guard(vfu_ctx_t *ctx)
{
    unsigned long hits;

    if (ctx->dma == NULL) {
        return;
    }
    hits = dma_guard_hits(ctx->dma, &ctx->dma_guard_seen);
    if (hits > 0) {
        int saved = errno;      /* called between a request and its errno */

        vfu_log(ctx, LOG_ERR, "DMA: the client shrank a file under its DMA "
                "maps; %lu page(s) of it now read as zeros, and what the "
                "device writes there is lost", hits);
        errno = saved;
    }
}

void
vfu_dma_release(vfu_ctx_t *ctx)
{
    struct dma_map *m;

    dirty_stop(ctx);
    /* The report buffer (up to 256 MiB) goes with the client that sized
     * it; the log itself stays, as device threads may look at it. */
    if (ctx->dirty != NULL) {
        free(ctx->dirty->reply);
        ctx->dirty->reply = NULL;
        ctx->dirty->reply_size = 0;
    }
    while (ctx->dma != NULL && (m = dma_table_any(ctx->dma)) != NULL) {
        remove_map(ctx, m);
    }
}

void
vfu_dma_free(vfu_ctx_t *ctx)
{
    dirty_free(ctx);
    dma_table_destroy(ctx->dma);
    ctx->dma = NULL;
}
